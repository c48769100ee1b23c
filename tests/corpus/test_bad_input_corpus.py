"""The bad-input corpus: every kind of bad record bascule has met, each with the reason code it must get, run on
SQLite and on PostgreSQL. Zero crashes; every kind quarantined (or loaded with its change reported) or refused
with its reason; the good records around them all stored.

Kinds: directory records (tests/corpus/ldif.py, through the load-directory flow), the three platforms' payloads
(tests/corpus/payloads.py, through each connector's parser and the extract flow's page tasks), listings that fail
for one host (through the Zoom connector against the sandbox), tenant files and the overrides CSV.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from connectors.graph import map_delta_item, map_event
from connectors.retry import RetryStats
from connectors.throttle import NoThrottle
from connectors.webex import map_meeting, map_person
from connectors.zoom import ZoomMeetingSource, map_user, meeting_from_zoom
from core import HostRef, Meeting, Platform, Quarantined
from tests.connectors.contract import TEST_RETRY, drain
from tests.connectors.harness_zoom import meeting_hosts, zoom_config
from tests.corpus import ldif, payloads
from tests.corpus.payloads import PayloadCase

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
TENANT = "corpus"
HOST = HostRef("host-1", "host-1@culture.gouv.fr")
GRAPH_PLANS = {"6fd2c87f-b296-42f0-b197-1e91e994b900": frozenset({"57ff2da0-773e-42df-b2af-ffb7a2317929"})}
PARSERS: dict[tuple[Platform, str], Callable[[Any], Any]] = {
    (Platform.ZOOM, "users"): lambda payload: map_user(payload, listed_as="active"),
    (Platform.ZOOM, "meetings"): lambda payload: meeting_from_zoom(
        payload, host=HOST, webinar=False, now=NOW, internal_domains=frozenset({"culture.gouv.fr"})),
    (Platform.TEAMS, "users"): lambda payload: map_delta_item(payload, GRAPH_PLANS),
    (Platform.TEAMS, "meetings"): lambda payload: map_event(payload, host=HOST, now=NOW,
                                                            internal_domains=frozenset({"culture.gouv.fr"})),
    (Platform.WEBEX, "users"): lambda payload: map_person(payload, frozenset({"LIC-MEETING"})),
    (Platform.WEBEX, "meetings"): lambda payload: map_meeting(payload, host=HOST, invitees=[], now=NOW),
}


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql)).all()]
    finally:
        engine.dispose()


def _open_quarantine(url: str) -> set[tuple[str, str, str]]:
    return set(_rows(url, "select source, record_key, reason from quarantine where resolved_at is null"))


@pytest.fixture
def state(migrated_url: str) -> str:
    from db.repositories import TenantRepository
    from flows.runtime import transaction

    with transaction(migrated_url) as session:
        TenantRepository(session).ensure(TENANT, name="Corpus", siret=None, config_path=None, config_hash=None,
                                         now=NOW)
    return migrated_url


# ----------------------------------------------------------------------------------------------- directory

def test_every_bad_directory_record_is_quarantined_and_the_good_ones_load(
        state: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.directory import load_directory

    export = tmp_path / "export.ldif"
    export.write_text(ldif.export(), encoding="utf-8")
    tenant = tmp_path / "tenant.toml"
    tenant.write_text(f'id = "{TENANT}"\nname = "Corpus"\nsiret = "11004601800013"\ndomains = ["culture.gouv.fr"]\n'
                      f'[directory]\nkind = "ldif"\nflavour = "ad"\nldif_path = "{export}"\n', encoding="utf-8")
    monkeypatch.setenv("BASCULE_DATABASE_URL", state)
    summary = load_directory(str(tenant))
    quarantine = {(key, reason) for source, key, reason in _open_quarantine(state) if source == "directory"}
    missing = [case.kind for case in ldif.CASES if (case.record_key, case.reason) not in quarantine]
    assert not missing, (missing, sorted(quarantine))
    anchors = {anchor for (anchor,) in _rows(state, "select anchor from directory_entry where removed_at is null")}
    for case in ldif.CASES:
        if case.record_key.startswith("directory:"):
            anchor = case.record_key.removeprefix("directory:").removesuffix("#duplicate")
            assert (anchor in anchors) is (case.loaded or case.reason == "DUPLICATE_SOURCE_ID"), case.kind
    good = {str(ldif.guid(f"good-{index}")) for index in range(ldif.GOOD_PEOPLE)} | {str(ldif.guid("twin-a"))}
    assert good <= anchors
    loaded = sum(case.loaded for case in ldif.CASES if case.record_key.startswith("directory:"))
    assert summary["inserted"] == len(good) + loaded + 1  # and the entry with a bad alias
    name = _rows(state, f"select display_name from directory_entry where anchor = '{ldif.guid('nul-name')}'")
    assert name == [("Agent Nul",)]


# ----------------------------------------------------------------------------------------------- payloads

def _store(url: str, platform: Platform, stream: str, items: list[Any], pass_id: str) -> None:
    from flows.extract import store_accounts_page, store_meetings_page

    if stream == "users":
        store_accounts_page.fn(url, TENANT, platform, items, pass_id=pass_id, next_cursor=None, delta=False,
                               items_done=len(items))
    else:
        store_meetings_page.fn(url, TENANT, platform, items, pass_id=pass_id, next_cursor=None,
                               items_done=len(items))


@pytest.mark.parametrize("platform", list(Platform))
def test_every_bad_platform_record_is_quarantined_and_the_good_ones_are_stored(state: str,
                                                                              platform: Platform) -> None:
    for stream in ("users", "meetings"):
        cases = [case for case in payloads.CASES if case.platform is platform and case.stream == stream]
        parse = PARSERS[(platform, stream)]
        items: list[Any] = []
        for payload in (*payloads.good(platform, stream), *(p for case in cases for p in case.payloads)):
            try:
                items.append(parse(payload))
            except Exception as error:  # the corpus's first promise: no record makes a parser raise
                raise AssertionError(f"{platform} {stream}: {payload!r:.120} raised {error!r}") from error
        _store(state, platform, stream, [item for item in items if item is not None], pass_id=f"pass-{stream}")
        _check_stored(state, platform, stream, cases)


def _check_stored(url: str, platform: Platform, stream: str, cases: list[PayloadCase]) -> None:
    quarantine = {(key, reason) for source, key, reason in _open_quarantine(url) if source == f"{platform}:{stream}"}
    missing = [case.kind for case in cases if (case.record_key, case.reason) not in quarantine]
    assert not missing, (missing, sorted(quarantine))
    table, column = ("source_account", "external_id") if stream == "users" else ("meeting", "external_id")
    stored = {key for (key,) in _rows(url, f"select {column} from {table} where platform = '{platform}'")}
    good = {str(_identity(payload)) for payload in payloads.good(platform, stream)}
    assert good <= stored, (good - stored)
    for case in cases:
        identity = case.record_key.split(":", 2)[2].removesuffix("#duplicate")
        assert (identity in stored) is case.loaded, (case.kind, identity)


def _identity(payload: dict[str, Any]) -> object:
    return payload["id"]


# ----------------------------------------------------------------------------------------------- listings

@pytest.mark.parametrize(("bugs", "page_size", "reason"), [
    (("refuse_meetings_of:{host}",), 300, "LISTING_REFUSED"),
    (("malformed_meetings_of:{host}",), 300, "LISTING_MALFORMED"),
    (("endless_page_token",), 300, "LISTING_UNBOUNDED"),
    (("repeat_page_token",), 1, "LISTING_CURSOR_REPEATED"),
], ids=["refused", "malformed", "endless", "repeated"])
def test_a_host_listing_that_fails_is_quarantined_with_its_reason(
        state: str, sandbox_factory: Any, contract_ministry: tuple[Path, dict[str, Any]], bugs: tuple[str, ...],
        page_size: int, reason: str) -> None:
    ministry = contract_ministry[0]
    stored = _meeting_counts(ministry)
    hosts = [host for host in meeting_hosts(ministry) if stored.get(host.external_id, 0) >= 2][:3]
    failing = hosts[1]
    server = sandbox_factory(rate_limits=False, broken=frozenset(bug.format(host=failing.external_id)
                                                                 for bug in bugs))
    source = ZoomMeetingSource(zoom_config(server, page_size=page_size, list_webinars=False),
                               throttle=NoThrottle(), retry=TEST_RETRY, stats=RetryStats(), clock=server.sandbox.now)
    for page in drain(source.iter_meetings(hosts)).pages:
        _store_page(state, list(page.items), list(page.incomplete))
    quarantine = {(key, why) for source_name, key, why in _open_quarantine(state) if source_name == "zoom:meetings"}
    assert (f"zoom:host:{failing.external_id}:meetings", reason) in quarantine
    listed = {host for (host,) in _rows(state, "select distinct host_account_id from meeting")}
    if reason in ("LISTING_REFUSED", "LISTING_MALFORMED"):
        assert listed == {hosts[0].external_id, hosts[2].external_id}  # the others went on
    else:
        assert all((f"zoom:host:{host.external_id}:meetings", reason) in quarantine for host in hosts)


def _store_page(url: str, items: list[Any], incomplete: list[str]) -> None:
    from flows.extract import store_meetings_page

    assert all(isinstance(item, Meeting | Quarantined) for item in items)
    store_meetings_page.fn(url, TENANT, Platform.ZOOM, items, pass_id="pass-listing", next_cursor=None,
                           items_done=len(items), incomplete=incomplete)


def _meeting_counts(ministry: Path) -> dict[str, int]:
    import json

    counts: dict[str, int] = {}
    for line in (ministry / "zoom" / "meetings.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["_kind"] != "expired_series":
            counts[record["_host"]] = counts.get(record["_host"], 0) + 1
    return counts


# ----------------------------------------------------------------------------------------------- tenant files

EXAMPLE = (Path(__file__).resolve().parents[2] / "tenants" / "example.toml").read_text(encoding="utf-8")
TENANT_CASES = [
    ("an unknown key", ("[cost_model]", "[cost_model]\nsurprise = 1"), "INVALID:extra_forbidden"),
    ("no SIRET", ('siret = "11004601800013"', ""), "INVALID:missing"),
    ("a secret where an environment variable name belongs",
     ('access_token_env = "BASCULE_WEBEX_ACCESS_TOKEN"', 'access_token_env = "Bearer abc.def"'), "INVALID:value_error"),
    ("a commitment floor above the commitment", ("commit_floor = 0", "commit_floor = 1000"), "INVALID:value_error"),
    ("a price that is not a number", ('annual_unit_cost = "150.00"', 'annual_unit_cost = "cent cinquante"'),
     "INVALID:decimal_parsing"),
    ("a negative port", ("port = 8725", "port = -1"), "INVALID:greater_than_equal"),
    ("not TOML", ("[waves]", "[waves"), "TENANT_NOT_TOML"),
    ("the LDIF export it names is missing", ("x.ldif", "missing.ldif"), "NAMED_FILE_MISSING"),
    ("the CA file it names is missing", ("cert.pem", "missing.pem"), "NAMED_FILE_MISSING"),
    ("the CA file it names is a directory", ("cert.pem", "."), "NAMED_FILE_NOT_A_FILE"),
]


@pytest.mark.parametrize(("change", "code"), [case[1:] for case in TENANT_CASES], ids=[c[0] for c in TENANT_CASES])
def test_every_bad_tenant_file_is_refused_with_its_reason(tmp_path: Path, change: tuple[str, str], code: str) -> None:
    from flows.tenant import TenantConfig, TenantFileError

    (tmp_path / "x.ldif").write_text("version: 1\n", encoding="utf-8")
    (tmp_path / "cert.pem").write_text("", encoding="utf-8")
    content = (EXAMPLE.replace("../.bascule/sandbox/directory.ldif", "x.ldif")
               .replace("../.bascule/sandbox/tls/cert.pem", "cert.pem"))
    old, new = change
    assert old in content
    path = tmp_path / "tenant.toml"
    path.write_text(content.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(TenantFileError) as raised:
        TenantConfig.load(path)
    assert raised.value.code == code and "\n" not in str(raised.value)


def test_the_corpus_has_at_least_fifty_kinds() -> None:
    kinds = [case.kind for case in ldif.CASES] + [case.kind for case in payloads.CASES] + [c[0] for c in TENANT_CASES]
    kinds += [f"override row {code}" for _row, code in OVERRIDE_ROWS if code]
    kinds += ["CSV without action", "CSV never closing a quote"]
    assert len(kinds) == len(set(kinds)) and len(kinds) + 4 >= 50  # and the four listing failures


# ----------------------------------------------------------------------------------------------- overrides CSV

OVERRIDE_ROWS = [  # (platform, account, action, person anchor) → the code the row must get (None: applied)
    (("zoom", "z-known", "merge", ""), "UNKNOWN_ACTION"),
    (("zoom", "z-known", "force_match", ""), "FORCE_MATCH_WITHOUT_PERSON"),
    (("skype", "s-1", "exclude", ""), "UNKNOWN_PLATFORM"),
    (("zoom", "", "exclude", ""), "NO_ACCOUNT"),
    (("zoom", "z-known", "exclude", "p-known"), "EXCLUDE_WITH_PERSON"),
    (("zoom", "z-nobody", "exclude", ""), "UNKNOWN_ACCOUNT"),
    (("zoom", "z-other", "force_match", "p-nobody"), "UNKNOWN_PERSON"),
    (("zoom", "z-known", "force_match", "p-known"), None),
    (("zoom", "z-known", "exclude", ""), "DECIDED_TWICE"),
    (("zoom", "z-\x00known", "exclude", ""), "CONTROL_CHARACTERS"),
]


def test_every_bad_override_row_is_refused_with_its_code_and_the_good_one_applied(state: str) -> None:
    from core import AccountStatus, SourceAccount
    from db.repositories import IdentityRepository, SourceAccountRepository
    from flows.identity_report import apply_overrides
    from flows.runtime import transaction

    with transaction(state) as session:
        SourceAccountRepository(session, TENANT, Platform.ZOOM).upsert(
            [SourceAccount(Platform.ZOOM, "z-known", "known@culture.gouv.fr", AccountStatus.ACTIVE),
             SourceAccount(Platform.ZOOM, "z-other", "other@culture.gouv.fr", AccountStatus.ACTIVE)], now=NOW,
            pass_id="p")
        IdentityRepository(session, TENANT).upsert_persons(
            [{"anchor": "p-known", "primary_email": "known@culture.gouv.fr", "email_normalised":
              "known@culture.gouv.fr", "disabled": False, "content_hash": "x"}], now=NOW)
    lines = ["kind,subject,value,detail,platform,account_external_id,action,person_anchor,reason\n"]
    lines += [f",,,,{platform},{account},{action},{anchor},corpus\n"
              for (platform, account, action, anchor), _code in OVERRIDE_ROWS]
    outcome = apply_overrides(state, TENANT, lines, author="corpus")
    refused = {row.line: str(row.code) for row in outcome.refused}
    assert refused == {index + 2: code for index, (_row, code) in enumerate(OVERRIDE_ROWS) if code is not None}
    assert [row.line for row in outcome.applied] == [index + 2 for index, (_r, code) in enumerate(OVERRIDE_ROWS)
                                                     if code is None]


@pytest.mark.parametrize(("content", "code"), [
    ("platform,account_external_id\nzoom,z-known\n", "NO_ACTION_COLUMN"),
    ('platform,account_external_id,action\nzoom,"z-known,exclude\n', "UNREADABLE_CSV"),
])
def test_a_csv_that_cannot_be_read_is_refused_whole(content: str, code: str) -> None:
    from flows.identity_report import read_override_rows

    rows, refused, _empty = read_override_rows(content.splitlines(keepends=True))
    assert rows == [] and [str(row.code) for row in refused] == [code]
