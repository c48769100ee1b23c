"""The synthetic ministry: deterministic, realistic, and its manifest tells the truth about its files."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core import ConflictKind, MeetingKind
from sandbox.generator.directory import Flavour
from sandbox.generator.ministry import GeneratorOptions, generate_ministry, iter_jsonl
from tests.conftest import AS_OF


def _digest(directory: Path) -> dict[str, str]:
    return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("flavour", [Flavour.AD, Flavour.SUPANN])
def test_same_seed_gives_byte_identical_files(tmp_path: Path, flavour: Flavour) -> None:
    options = GeneratorOptions(agents=600, seed=3, flavour=flavour, as_of=AS_OF)
    generate_ministry(tmp_path / "a", options)
    generate_ministry(tmp_path / "b", options)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_another_seed_gives_another_ministry(tmp_path: Path) -> None:
    generate_ministry(tmp_path / "a", GeneratorOptions(agents=300, seed=3, as_of=AS_OF))
    generate_ministry(tmp_path / "b", GeneratorOptions(agents=300, seed=4, as_of=AS_OF))
    digests_a, digests_b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert digests_a["directory.ldif"] != digests_b["directory.ldif"]
    assert digests_a["zoom/meetings.jsonl"] != digests_b["zoom/meetings.jsonl"]


def _ldif_records(path: Path) -> int:
    return sum(1 for line in path.read_bytes().split(b"\n") if line.startswith((b"dn: ", b"dn:: ")))


@pytest.mark.parametrize("fixture", ["ministry_ad", "ministry_supann"])
def test_manifest_counts_equal_the_files(fixture: str, request: pytest.FixtureRequest) -> None:
    out, manifest = request.getfixturevalue(fixture)
    files = manifest["files"]
    records = _ldif_records(out / "directory.ldif")
    assert records == manifest["directory"]["records"] == files["directory.ldif"]["records"]
    for name, counts in files.items():
        if name.endswith(".jsonl"):
            assert sum(1 for _ in iter_jsonl(out / name)) == counts["lines"], name

    outcomes: Counter[str] = Counter()
    conflicts: Counter[str] = Counter()
    for platform, users_file in (("zoom", "zoom/users.jsonl"), ("teams", "teams/users.jsonl"),
                                 ("webex", "webex/people.jsonl")):
        totals: Counter[str] = Counter()
        for user in iter_jsonl(out / users_file):
            truth = user["_truth"]
            totals["total"] += 1
            outcome = truth["outcome"]
            outcomes[outcome.split(":")[0]] += 1
            if outcome.startswith("match:"):
                outcomes[outcome] += 1
            conflicts.update(truth.get("conflicts", []))
        assert totals["total"] == manifest["platforms"][platform]["total"]
    identity = manifest["identity"]
    for method, count in identity["matches_by_method"].items():
        assert outcomes[f"match:{method}"] == count, method
    account_level = {ConflictKind.SOURCE_UNMATCHED, ConflictKind.ALIAS_ONLY_MATCH,
                     ConflictKind.CASE_OR_UNICODE_MISMATCH, ConflictKind.NON_PERSON_ACCOUNT,
                     ConflictKind.PRIVILEGED_ACCOUNT}
    for kind in account_level:
        assert conflicts[kind] == identity["conflicts"][kind], kind
    quarantined = sum(sum(c.values()) for p, c in manifest["extract_quarantine"].items())
    invalid_accounts = sum(c.get("INVALID_EMAIL", 0) for c in manifest["extract_quarantine"].values())
    assert outcomes["quarantine"] == invalid_accounts <= quarantined
    assert identity["source_accounts_mapped"] == outcomes["match"] + outcomes["conflict"]

    for platform, meetings_file, kind_key in (("zoom", "zoom/meetings.jsonl", "_kind"),
                                              ("teams", "teams/events.jsonl", "_kind"),
                                              ("webex", "webex/meetings.jsonl", "_kind")):
        kinds = Counter(str(m[kind_key]) for m in iter_jsonl(out / meetings_file))
        expected = {k: v for k, v in manifest["meetings"][platform].items() if k != "total"}
        if platform == "teams":
            expected["not_online"] = expected.pop("not_online_events", 0)
        assert dict(kinds) == {k: v for k, v in expected.items() if v}, platform


def test_every_meeting_kind_and_flag_is_present(ministry_ad: tuple[Path, dict[str, Any]]) -> None:
    _out, manifest = ministry_ad
    zoom = manifest["meetings"]["zoom"]
    for kind in MeetingKind:
        assert zoom.get(kind, 0) > 0, kind
    flags = Counter[str]()
    for platform_flags in manifest["meeting_flags"].values():
        flags.update(platform_flags)
    for flag in ("over_150_invitees", "external_guests", "webinar", "waiting_room", "passcode", "alternative_hosts",
                 "dial_in", "registration"):
        assert flags[flag] > 0, flag


def test_every_dirty_kind_is_present_and_documented(ministry_ad: tuple[Path, dict[str, Any]]) -> None:
    _out, manifest = ministry_ad
    documented = manifest["dirty_kinds"]
    for kind, count in manifest["dirty"].items():
        assert documented.get(kind), kind
        assert count > 0, kind
    assert set(documented) == set(manifest["dirty"])


def test_names_look_french_and_dirty(ministry_ad: tuple[Path, dict[str, Any]]) -> None:
    out, _manifest = ministry_ad
    names = [f"{u.get('first_name', '')} {u.get('last_name', '')}" for u in iter_jsonl(out / "zoom/users.jsonl")]
    text = " ".join(names)
    assert any(ch in text for ch in "éèëïô"), "accents"
    assert "'" in text, "apostrophes"
    assert any(particle in text for particle in (" de ", " du ", " Le ")), "particles"
    assert any("-" in name.split(" ")[0] for name in names), "compound given names"
    assert any(any(ord(ch) > 0x2FF for ch in name) for name in names), "non-Latin scripts"


def test_addresses_are_unique_except_where_the_dirt_says(ministry_ad: tuple[Path, dict[str, Any]]) -> None:
    out, _manifest = ministry_ad
    emails = Counter(u["email"].strip().lower() for u in iter_jsonl(out / "zoom/users.jsonl")
                     if "quarantine" not in u["_truth"]["outcome"])
    repeated = {email: n for email, n in emails.items() if n > 1}
    assert repeated == {}, "one Zoom account per address (double accounts use the alias)"
    ids = [m["id"] for m in iter_jsonl(out / "zoom/meetings.jsonl")]
    assert len(ids) == len(set(ids))


def test_manifest_is_json_with_ground_truth_keys(ministry_supann: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = ministry_supann
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert set(on_disk["identity"]["conflicts"]) == {kind.value for kind in ConflictKind}
    assert on_disk["generator"]["flavour"] == "supann"


def test_organisers_events_carry_their_meeting_s_link_and_rewrite_cleanly(
        contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    """Every generated calendar event (calendars/events.jsonl) reads as its organiser's, names its meeting by the
    key extraction gives it, and its invitation block is found and replaced whole by the rewriter."""
    from core.ical_rewrite import IcalRefused, Rewritten, read_object, rewrite_object
    from core.links import lookup_keys

    ministry, manifest = contract_ministry
    records = list(iter_jsonl(ministry / "calendars" / "events.jsonl"))
    truth = manifest["calendars"]
    assert len(records) == truth["events_held"] + truth["stray_events"]
    assert sum(record["stray"] for record in records) == truth["stray_events"] > 0
    meetings = {("zoom", str(m["id"])): m["join_url"] for m in iter_jsonl(ministry / "zoom" / "meetings.jsonl")}
    meetings |= {("webex", str(m["meetingNumber"])): m["webLink"] for m in iter_jsonl(ministry / "webex" /
                                                                                        "meetings.jsonl")}
    overrides = 0
    for record in records:
        data = record["ics"].encode()
        parsed = read_object(data)
        assert not isinstance(parsed, IcalRefused) and parsed.organizer == record["organiser"].lower()
        key = parsed.join_keys[0]
        if not record["stray"]:
            assert key in lookup_keys(meetings[(record["platform"], record["meeting"])])
        overrides += parsed.overrides
        result = rewrite_object(data, join_key=key, visio_url="https://visio.numerique.gouv.fr/abc-defg-hij")
        assert isinstance(result, Rewritten) and result.changed, (record["name"], result)
        text = result.data.decode().replace("\r\n ", "")
        assert not read_object(result.data).join_keys  # type: ignore[union-attr]
        assert "ID de réunion" not in text and "Meeting ID" not in text and "Numéro de la réunion" not in text
    assert overrides > 0
