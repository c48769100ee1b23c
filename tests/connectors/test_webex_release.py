"""Removing a Webex licence: PATCH /licenses/users, then the person read back (webex.md §4.3 option B); a 206
counts only what is gone. Against the sandbox's Webex."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectors.retry import RetryStats
from connectors.roles import LicenceReleaser
from connectors.throttle import NoThrottle
from connectors.webex import WebexConfig, WebexLicenceRelease
from core.licences import ReleaseRefusal
from sandbox.webex import IMPLICIT_LICENCE_NAMES
from tests.connectors.contract import TEST_RETRY


def _release(server: Any) -> WebexLicenceRelease:
    manifest = server.sandbox.manifest["tenant"]
    config = WebexConfig(api_url=server.url + "/webex/v1/", org_id=manifest["webex_org_id"],
                         access_token=server.config.credentials.webex_access_token,
                         internal_domains=tuple(manifest["domains"]))
    return WebexLicenceRelease(config, throttle=NoThrottle(), retry=TEST_RETRY, stats=RetryStats())


def _catalogue(data: Path) -> tuple[set[str], list[dict[str, Any]]]:
    """The licences Webex keeps on its own (implicit), and the people of the ministry."""
    catalogue = json.loads((data / "webex" / "licenses.json").read_text(encoding="utf-8"))
    items = catalogue["items"] if isinstance(catalogue, dict) else catalogue
    implicit = {item["id"] for item in items if item.get("name") in IMPLICIT_LICENCE_NAMES}
    people = [json.loads(line) for line in (data / "webex" / "people.jsonl").read_text(encoding="utf-8").splitlines()
              if line.strip()]
    return implicit, people


def test_a_licence_is_removed_and_one_webex_keeps_is_not_counted(
        sandbox_factory: Any, contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    implicit, people = _catalogue(contract_ministry[0])
    person = next(p for p in people if any(lic not in implicit for lic in p.get("licenses") or [])
                  and any(lic in implicit for lic in p.get("licenses") or []))
    removable = next(lic for lic in person["licenses"] if lic not in implicit)
    kept = next(lic for lic in person["licenses"] if lic in implicit)
    release = _release(sandbox_factory())
    with release:
        done = release.remove_licence(person["id"], removable)
        assert (done.released, done.refusal) == (True, None), done
        releaser: LicenceReleaser = release
        assert releaser.release(person["id"], removable).before is None  # gone: nothing sent again
        partial = release.remove_licence(person["id"], kept)
        assert (partial.released, partial.refusal) == (False, ReleaseRefusal.NOT_APPLIED), partial
        assert partial.detail is not None and "206" in partial.detail
        missing = release.remove_licence("Y2lzY29zcGFyazovL3VzL1BFT1BMRS9ub2JvZHk", removable)
        assert (missing.released, missing.refusal) == (False, ReleaseRefusal.NOT_FOUND)


def test_a_removed_licence_is_added_back_and_the_person_shows_it(
        sandbox_factory: Any, contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    implicit, people = _catalogue(contract_ministry[0])
    person = next(p for p in people if any(lic not in implicit for lic in p.get("licenses") or []))
    removable = next(lic for lic in person["licenses"] if lic not in implicit)
    release = _release(sandbox_factory())
    with release:
        releaser: LicenceReleaser = release
        assert releaser.release(person["id"], removable).released
        restored = releaser.restore(person["id"], removable)
        assert (restored.restored, restored.refusal) == (True, None), restored
        assert releaser.release(person["id"], removable).before == f"webex:licence:{removable}"
        missing = releaser.restore("Y2lzY29zcGFyazovL3VzL1BFT1BMRS9ub2JvZHk", removable)
        assert (missing.restored, missing.refusal) == (False, ReleaseRefusal.NOT_FOUND)
