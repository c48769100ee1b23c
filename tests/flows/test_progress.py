"""A long stage's progress: the Prefect progress artifact always, a bar on the terminal only in a command run there."""

from __future__ import annotations

import uuid

import pytest
from prefect import flow

from flows import progress


def _artifact_progress(key: str) -> float:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert len(found) == 1
    return float(found[0].data)  # type: ignore[arg-type]


@flow(name="progress-test")
def _stage(key: str, label: str) -> list[float]:
    """40 %, a half point more (no call to the API for it), then done; the artifact's value after each step."""
    bar = progress.Progress(key, "a test stage", label=label)
    seen = []
    for value in (40.0, 40.5):
        bar.set(value)
        seen.append(_artifact_progress(key))
    bar.done()
    seen.append(_artifact_progress(key))
    return seen


def test_a_bar_on_the_terminal_and_the_artifact_in_prefect(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(progress, "_terminal", lambda: True)
    assert _stage(f"progress-test-{uuid.uuid4().hex[:8]}", "extract zoom") == [40.0, 40.0, 100.0]
    shown = capsys.readouterr().err
    assert "extract zoom" in shown and "100%" in shown


def test_no_bar_where_nobody_watches(capsys: pytest.CaptureFixture[str]) -> None:
    assert _stage(f"progress-test-{uuid.uuid4().hex[:8]}", "quiet")[-1] == 100.0
    assert "quiet" not in capsys.readouterr().err
