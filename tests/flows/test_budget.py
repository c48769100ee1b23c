"""Prefect global concurrency limits share a source account between workers; a missing limit is an error."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from flows.budget import ensure_limits, one_per_tenant, slot, within_slots


def test_a_held_slot_makes_the_next_page_fetch_wait() -> None:
    name = f"bascule-test-{uuid.uuid4().hex[:8]}"
    ensure_limits([name], slots=1)
    held, done = threading.Event(), threading.Event()

    def other_worker() -> None:
        with slot(name):
            held.set()
            time.sleep(1.5)
        done.set()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert held.wait(30)
    pages = within_slots(iter(["page 1", "page 2"]), name)
    assert next(pages) == "page 1"
    assert done.is_set()  # it waited for the other worker to give its slot back
    assert list(pages) == ["page 2"]
    thread.join()


def test_two_slots_let_two_workers_fetch_together() -> None:
    """The second worker gets its page while the first still holds its slot (no timing: the first holds it until
    told to let go, after the check; with one slot the second would wait and the check would find nothing)."""
    name = f"bascule-test-{uuid.uuid4().hex[:8]}"
    ensure_limits([name], slots=2)
    held, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        with slot(name):
            held.set()
            release.wait(120)

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert held.wait(30)
    fetched: list[str] = []
    second = threading.Thread(target=lambda: fetched.append(next(within_slots(iter(["page"]), name))))
    second.start()
    second.join(60)
    try:
        assert fetched == ["page"], "the second worker waited for the first one's slot"
    finally:
        release.set()
        thread.join()
        second.join()


def test_a_limit_that_does_not_exist_is_refused_rather_than_ignored() -> None:
    name = f"bascule-never-created-{uuid.uuid4().hex[:8]}"
    with pytest.raises(Exception, match="must be created before acquiring slots"), slot(name, timeout_seconds=5):
        pass


def test_a_tenant_runs_a_stage_once_at_a_time_while_other_tenants_go_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With shared limits on, a second run of a stage for one tenant waits for the first; another tenant's run of
    the same stage does not (no deployment-wide limit queueing every ministry behind one)."""
    monkeypatch.setenv("BASCULE_SHARED_LIMITS", "1")
    suffix = uuid.uuid4().hex[:8]
    files = {}
    for tenant_id in (f"min-a-{suffix}", f"min-b-{suffix}"):
        files[tenant_id] = tmp_path / f"{tenant_id}.toml"
        files[tenant_id].write_text(f'id = "{tenant_id}"\n', encoding="utf-8")
    first_inside, release = threading.Event(), threading.Event()
    finished: list[str] = []

    @one_per_tenant("extract")
    def stage(tenant_file: str, wave: str | None = None) -> str:
        if not first_inside.is_set():
            first_inside.set()
            assert release.wait(60)
        finished.append(tenant_file)
        return tenant_file

    a, b = (str(path) for path in files.values())
    first = threading.Thread(target=stage, args=(a,))
    first.start()
    assert first_inside.wait(60)
    second = threading.Thread(target=stage, args=(a,))
    second.start()
    assert stage(b) == b                      # another tenant is not held by tenant a's run
    second.join(timeout=2)
    assert second.is_alive() and finished == [b]  # tenant a's second run waits for its first
    release.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert finished == [b, a, a]
