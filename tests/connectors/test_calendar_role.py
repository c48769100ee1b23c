"""One contract suite for the OrganiserCalendar role (connectors.roles), played by each adapter against a real
server: CalDAV on Xandikos (RFC 6638 scheduling) and Radicale (none), Exchange Online on the Graph sandbox (the
add-ins' blocks in Outlook bodies). Whatever the calendar system, the flows rely on the same behaviour: the scan
finds the organiser's linked series with its original UID; the rewrite puts the Visio link in, takes the join link
out, keeps the UID, and is not sent twice; a concurrent edit (412) is re-applied on the fresh copy and kept; the
restore takes the event back to what it was."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.roles import OrganiserCalendar
from core.ical_rewrite import IcalRefused, StoredEvent
from tests.conftest import unavailable
from tests.connectors.test_caldav_calendar import VISIO, WINDOW, _calendar, _put, _series


@dataclass
class Backend:
    """A calendar system with one organiser's linked series in it, and a way to edit it behind bascule's back."""

    name: str
    role: OrganiserCalendar
    organiser: str
    href: str
    join_key: str
    edit: Callable[[], None]          # the organiser saves a change to the series (a new ETag / change key)
    edited: Callable[[bytes], bool]   # the change is in this copy
    delete: Callable[[], None]        # the organiser deletes the series
    forget: Callable[[str], str]      # the server drops this change token (returns the token to use)
    window: tuple[datetime, datetime] = WINDOW


def _caldav(kind: str, directory: Path) -> Iterator[Backend]:
    from tests.support.caldav_servers import start_radicale, start_xandikos

    try:
        server = start_xandikos(directory) if kind == "xandikos" else start_radicale(directory)
    except (OSError, RuntimeError) as exc:
        unavailable(f"{kind} CalDAV server: {exc}")
    try:
        server.warm(["alice", "bob"])
        name = f"{uuid.uuid4()}.ics"
        original = _series(f"zoom-{uuid.uuid4()}@zoom.us")
        assert _put(server, "alice", name, original).status_code == 201
        role = _calendar(server)
        href = server.calendar_url("alice") + name

        def edit() -> None:
            current = role.read("alice@example.gouv.fr", href)
            assert current is not None
            changed = current.data.replace(b"SUMMARY:Point hebdo de l'", b"SUMMARY:[Salle 12] Point hebdo de l'")
            assert _put(server, "alice", name, changed, etag=current.etag).status_code in (201, 204)

        def delete() -> None:
            with server.client("alice") as client:
                assert client.delete(href).status_code in (200, 204)

        def forget(token: str) -> str:
            return server.url + "/sync/unknown-token"   # a token this server never gave (as after a restore)

        yield Backend(kind, role, "alice@example.gouv.fr", href, "zoom:81234567890", edit,
                      lambda data: b"[Salle 12]" in data, delete, forget)
    finally:
        server.stop()


def _graph(sandbox_factory: Any) -> Iterator[Backend]:
    from connectors.graph import GraphCalendar
    from connectors.graph_calendar import GraphOrganiserCalendar
    from connectors.throttle import NoThrottle
    from sandbox.graph import state_of
    from tests.connectors.contract import TEST_RETRY
    from tests.connectors.harness_graph import graph_config

    server = sandbox_factory(outlook_calendars=True)
    graph_state = state_of(server.sandbox)
    event = next(r for r in graph_state.events.records() if "uid" in (r.get("_truth") or {})
                 and not r["_truth"]["stray"] and r["type"] == "seriesMaster")
    organiser = str(event["organizer"]["emailAddress"]["address"])
    with GraphCalendar(graph_config(server), throttle=NoThrottle(), retry=TEST_RETRY) as graph:
        role = GraphOrganiserCalendar(graph)
        found = role.read(organiser, str(event["id"]))
        assert found is not None

        def edit() -> None:
            server.sandbox.set_bugs(add=[f"edit_event_after_read:{event['id']}"])
            role.read(organiser, str(event["id"]))      # the organiser saves right after this read

        def forget(token: str) -> str:
            graph_state.reset_event_sync()              # the service dropped its sync states: a 410 on the token
            return token

        first = datetime.fromisoformat(str(event["start"]["dateTime"])[:19]).replace(tzinfo=UTC)
        yield Backend("graph", role, organiser, str(event["id"]), found.parsed.join_keys[0], edit,
                      lambda data: b"Ordre du jour ajout" in data,
                      lambda: graph_state.delete_event(str(event["id"])), forget,
                      (first - timedelta(days=1), first + timedelta(days=90)))


@pytest.fixture(params=["xandikos", "radicale", "graph"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, sandbox_factory: Any) -> Iterator[Backend]:
    if request.param == "graph":
        yield from _graph(sandbox_factory)
    else:
        yield from _caldav(request.param, tmp_path / request.param)


def _scanned(backend: Backend) -> StoredEvent:
    found = [event for event in backend.role.scan(backend.organiser, *WINDOW) if event.href == backend.href]
    assert len(found) == 1, f"{backend.name}: the series is found once"
    return found[0]


def test_the_series_is_found_rewritten_once_and_restored(backend: Backend) -> None:
    event = _scanned(backend)
    assert event.parsed.uid and backend.join_key in event.parsed.join_keys and event.etag
    assert backend.role.read(backend.organiser, backend.href) is not None
    written = backend.role.rewrite(event, join_key=backend.join_key, visio_url=VISIO)
    assert not isinstance(written, IcalRefused) and written.changed and written.conflicts == 0
    now = backend.role.read(backend.organiser, backend.href)
    assert now is not None and backend.role.carries(now, VISIO)
    assert backend.join_key not in now.parsed.join_keys and now.parsed.uid == event.parsed.uid
    again = backend.role.rewrite(now, join_key=backend.join_key, visio_url=VISIO)
    assert not isinstance(again, IcalRefused) and not again.changed          # nothing written twice
    restored = backend.role.restore(backend.organiser, backend.href, original=written.before,
                                    rewritten=written.after, sequence=now.parsed.sequence)
    back = backend.role.read(backend.organiser, backend.href)
    assert back is not None and not backend.role.carries(back, VISIO) and restored.kept == ()
    assert back.parsed.join_keys == event.parsed.join_keys and back.parsed.uid == event.parsed.uid


def test_an_edit_between_read_and_write_is_kept_and_the_rewrite_applied_on_top(backend: Backend) -> None:
    event = _scanned(backend)
    backend.edit()                                   # the event changes after bascule read it: a stale ETag
    written = backend.role.rewrite(event, join_key=backend.join_key, visio_url=VISIO)
    assert not isinstance(written, IcalRefused) and written.changed and written.conflicts >= 1
    now = backend.role.read(backend.organiser, backend.href)
    assert now is not None and backend.role.carries(now, VISIO) and backend.edited(now.data)
    backend.role.restore(backend.organiser, backend.href, original=written.before, rewritten=written.after,
                         sequence=now.parsed.sequence)
    back = backend.role.read(backend.organiser, backend.href)
    assert back is not None and not backend.role.carries(back, VISIO) and backend.edited(back.data)


def test_changes_since_a_token_are_only_what_changed(backend: Backend) -> None:
    """The delta scan: a first call without a token lists everything and gives a token; then nothing changed is
    nothing; the organiser's edit comes back as that one event, edited; a deletion comes back as gone; a token the
    server dropped lists everything again, with a new token."""
    first = backend.role.changes(backend.organiser, *backend.window, None, {})
    assert first.full and first.token and backend.href in [event.href for event in first.events]
    known = {event.href: event.etag for event in first.events}
    quiet = backend.role.changes(backend.organiser, *backend.window, first.token, known)
    assert not quiet.full and (list(quiet.events), list(quiet.gone)) == ([], []) and quiet.token
    backend.edit()
    edited = backend.role.changes(backend.organiser, *backend.window, quiet.token, known)
    assert not edited.full and [event.href for event in edited.events] == [backend.href]
    assert backend.edited(edited.events[0].data) and edited.events[0].etag != known[backend.href]
    assert backend.join_key in edited.events[0].parsed.join_keys and list(edited.gone) == []
    held = {**known, backend.href: edited.events[0].etag}      # a change bascule already holds is no news
    already = backend.role.changes(backend.organiser, *backend.window, quiet.token, held)
    assert (list(already.events), list(already.gone)) == ([], [])
    backend.delete()
    deleted = backend.role.changes(backend.organiser, *backend.window, edited.token, known)
    assert not deleted.full and list(deleted.events) == [] and list(deleted.gone) == [backend.href]
    again = backend.role.changes(backend.organiser, *backend.window, backend.forget(str(deleted.token)), known)
    assert again.full and again.token and backend.href not in [event.href for event in again.events]
    assert backend.href in again.gone
