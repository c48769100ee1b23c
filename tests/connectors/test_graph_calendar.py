"""GraphCalendar against the sandbox Graph over real HTTP: rewrite a series master's Teams block, then roll back.

Expectations come from the generated files (teams/events.jsonl) and from the sandbox's kept versions of each
event (sandbox.graph.state_of), never from the connector: the PATCH must change only the body and the location.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter

from connectors.errors import NotFound
from connectors.graph import GraphCalendar, _event_patch
from connectors.retry import RetryStats
from connectors.throttle import NoThrottle
from core.calendar import BodyRefused, CalendarEvent, rewrite_event, shows_visio, visio_block
from sandbox.faults import FaultRates
from sandbox.graph import state_of
from sandbox.server import SandboxServer
from tests.connectors.contract import TEST_RETRY
from tests.connectors.harness_graph import graph_config, lines

VISIO = "https://visio.numerique.gouv.fr/abc-defg-hij"
PHONE, PIN = "+33 1 84 88 00 00", "1234567890"
TAIL = "</body>\r\n</html>\r\n"
# What a PATCH of body and location may change on the stored event (the service sets the last three itself).
PATCHED = {"body", "location", "locations", "bodyPreview", "lastModifiedDateTime", "changeKey"}


def variant_of(event: Mapping[str, Any]) -> str:
    """The generator's body variant, told by its markup."""
    content = str(event["body"]["content"])
    if "opacity:.36" in content:
        return "modern"
    return "legacy" if "Rejoindre la réunion Microsoft Teams" in content else "edited"


def series_masters(ministry: Path) -> list[dict[str, Any]]:
    """Organisers' Teams series masters of the generated ministry, in file order."""
    return [event for event in lines(ministry / "teams" / "events.jsonl")
            if event["type"] == "seriesMaster" and event["_kind"] != "not_online" and event["isOrganizer"]]


def pick(ministry: Path, variant: str, *, short: bool) -> dict[str, Any]:
    found = next((event for event in series_masters(ministry) if variant_of(event) == variant
                  and ("/meet/" in event["onlineMeeting"]["joinUrl"]) == short), None)
    assert found is not None, f"the ministry has no {variant} series master with a {'short' if short else 'classic'}"
    return found


def calendar(server: SandboxServer, **changes: Any) -> GraphCalendar:
    return GraphCalendar(graph_config(server), throttle=changes.pop("throttle", NoThrottle()), retry=TEST_RETRY,
                         **changes)


CASES = [(variant, short) for variant in ("modern", "legacy", "edited") for short in (False, True)]


@pytest.mark.parametrize(("variant", "short"), CASES,
                         ids=[f"{v}-{'short' if s else 'classic'}" for v, s in CASES])
def test_a_series_master_is_rewritten_then_restored_byte_for_byte(sandbox_factory: Any, contract_ministry: Any,
                                                                  variant: str, short: bool) -> None:
    ministry, _manifest = contract_ministry
    generated = pick(ministry, variant, short=short)
    server = sandbox_factory()
    with calendar(server) as graph:
        original = graph.get_event(generated["_mailbox"], generated["id"])
        assert (original.event_id, original.is_organizer, original.event_type) == (generated["id"], True,
                                                                                   "seriesMaster")
        assert original.body_content_type == "html" and original.body == generated["body"]["content"]
        assert original.location == generated["location"] and list(original.locations) == generated["locations"]
        assert original.join_url == generated["onlineMeeting"]["joinUrl"]

        rewritten = rewrite_event(original, visio_url=VISIO, phone=PHONE, pin=PIN)
        assert not isinstance(rewritten, BodyRefused)
        body, location = rewritten
        updated = graph.update_event(original.mailbox, original.event_id, body_html=body, location=location)
        after = graph.get_event(original.mailbox, original.event_id)

        assert updated == after and after.body == body and shows_visio(after, VISIO)
        # Only the block changed: the generator's head (up to the agenda's <br>) and tail are still there.
        head = original.body[: original.body.index("<br>\r\n") + len("<br>\r\n")]
        assert original.body.endswith("\r\n" + TAIL)
        assert generated["onlineMeeting"]["joinUrl"] in original.body[len(head):]
        assert after.body == head + visio_block(VISIO, phone=PHONE, pin=PIN) + "\r\n" + TAIL
        assert {k for k in after.location if k not in ("locationType", "uniqueIdType")} == set(location)

        graph.update_event(original.mailbox, original.event_id, body_html=original.body,
                           location=original.location, locations=original.locations)
        restored = graph.get_event(original.mailbox, original.event_id)

    assert restored.body == original.body
    assert restored.location == original.location and restored.locations == original.locations
    assert not shows_visio(restored, VISIO)
    stored = state_of(server.sandbox)
    current = stored.event(generated["id"])
    assert current is not None
    versions = [*stored.event_versions(generated["id"]), current]
    assert len(versions) == 3 and versions[0] == generated
    for before, now in pairwise(versions):
        assert {k for k in before.keys() | now.keys() if before.get(k) != now.get(k)} <= PATCHED
    assert current["location"] == generated["location"] and current["locations"] == generated["locations"]
    assert {k: v for k, v in current.items() if k not in PATCHED} == {
        k: v for k, v in generated.items() if k not in PATCHED}


def test_the_patch_carries_only_body_and_location() -> None:
    def wire(**members: Any) -> dict[str, Any]:
        writer = JsonSerializationWriter()
        writer.write_object_value(None, _event_patch(**members))
        return orjson.loads(writer.get_serialized_content())  # type: ignore[no-any-return]

    assert wire(body_html="<p>x\r\n</p>", location={"displayName": "Visio", "locationUri": VISIO},
                locations=None) == {"@odata.type": "#microsoft.graph.event",
                                    "body": {"contentType": "html", "content": "<p>x\r\n</p>"},
                                    "location": {"displayName": "Visio", "locationUri": VISIO}}
    # Members the SDK would drop or alter go verbatim, so a rollback restores what was read.
    odd = {"displayName": "Salle", "locationUri": None, "locationType": "somethingNew", "uniqueIdType": "private",
           "address": {"city": "Paris", "street": ""}, "coordinates": {"latitude": 48.85, "longitude": 2}}
    sent = wire(body_html="", location=odd, locations=[odd, {"displayName": "Visio"}])
    assert sent["location"] == odd and sent["locations"] == [odd, {"displayName": "Visio"}]
    assert set(sent) == {"@odata.type", "body", "location", "locations"}


def test_missing_events_raise_not_found(sandbox_factory: Any, contract_ministry: Any) -> None:
    ministry, _manifest = contract_ministry
    first, *others = series_masters(ministry)
    elsewhere = next(event for event in others if event["_mailbox"] != first["_mailbox"])
    server = sandbox_factory()
    with calendar(server) as graph:
        with pytest.raises(NotFound):
            graph.get_event(first["_mailbox"], "AAMkAGI2-no-such-event")
        with pytest.raises(NotFound):
            graph.get_event(first["_mailbox"], elsewhere["id"])        # an event of another mailbox
        with pytest.raises(NotFound):
            graph.update_event(first["_mailbox"], elsewhere["id"], body_html="<p>x</p>",
                               location={"displayName": "Visio"})
    assert server.sandbox.stats["teams:event_patches"] == 0


class RecordingThrottle:
    """Keeps the budget keys asked for (a Throttle)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._lock = threading.Lock()

    def acquire(self, key: str, cost: float = 1.0) -> None:
        with self._lock:
            self.keys.append(key)


def test_throttled_calls_are_waited_out_under_the_mailbox_budget(sandbox_factory: Any,
                                                                 contract_ministry: Any) -> None:
    ministry, _manifest = contract_ministry
    generated = pick(ministry, "modern", short=False)
    # Seed 15 throttles the PATCH and the last GET once each (the draws are in request order).
    server = sandbox_factory(faults=FaultRates(throttle=0.5, seed=15))
    stats, throttle = RetryStats(), RecordingThrottle()
    with calendar(server, throttle=throttle, stats=stats) as graph:
        original = graph.get_event(generated["_mailbox"], generated["id"])
        rewritten = rewrite_event(original, visio_url=VISIO)
        assert not isinstance(rewritten, BodyRefused)
        graph.update_event(original.mailbox, original.event_id, body_html=rewritten[0], location=rewritten[1])
        after = graph.get_event(original.mailbox, original.event_id)

    assert shows_visio(after, VISIO)
    injected = server.sandbox.stats["teams:injected:throttle"]
    assert injected == 2 and stats.throttled == injected
    assert server.sandbox.stats["teams:retry_attempt_header"] == 0     # kiota's RetryHandler never retried
    assert server.sandbox.stats["teams:event_patches"] == 1
    tenant = server.sandbox.manifest["tenant"]["entra_tenant_id"]
    assert throttle.keys == [f"graph:{tenant}:mailbox:{generated['_mailbox']}"] * (3 + injected)


def test_one_instance_serves_several_threads(sandbox_factory: Any, contract_ministry: Any) -> None:
    ministry, _manifest = contract_ministry
    wanted = series_masters(ministry)[:8]
    server = sandbox_factory()
    graph = calendar(server)
    results: dict[str, CalendarEvent] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(share: list[dict[str, Any]]) -> None:
        try:
            start.wait()
            for event in share:
                results[event["id"]] = graph.get_event(event["_mailbox"], event["id"])
        except BaseException as error:   # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(wanted[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    graph.close()

    assert not errors
    assert {event_id: found.body for event_id, found in results.items()} == {
        event["id"]: event["body"]["content"] for event in wanted}
    with pytest.raises(RuntimeError, match="closed"):
        graph.get_event(wanted[0]["_mailbox"], wanted[0]["id"])


def test_a_stale_change_key_is_refused_with_412_and_a_fresh_one_is_taken(sandbox_factory: Any,
                                                                         contract_ministry: Any) -> None:
    """If-Match as Exchange honours it: the change key read is accepted, a stale one is PreconditionFailed (not
    retried: the caller reads again), and the event is left as the other writer made it."""
    from connectors.errors import PreconditionFailed

    ministry, _manifest = contract_ministry
    generated = pick(ministry, "modern", short=False)
    server = sandbox_factory()
    with calendar(server) as graph:
        read = graph.get_event(generated["_mailbox"], generated["id"])
        assert read.change_key == generated["changeKey"]
        # Someone else writes first (no If-Match: last writer wins, as Graph does without it).
        theirs = graph.update_event(read.mailbox, read.event_id, body_html=read.body + "<p>note</p>",
                                    location=read.location)
        rewritten = rewrite_event(read, visio_url=VISIO)
        assert not isinstance(rewritten, BodyRefused)
        with pytest.raises(PreconditionFailed):
            graph.update_event(read.mailbox, read.event_id, body_html=rewritten[0], location=rewritten[1],
                               if_match=read.change_key)
        assert graph.get_event(read.mailbox, read.event_id).body == theirs.body
        fresh = graph.get_event(read.mailbox, read.event_id)
        again = rewrite_event(fresh, visio_url=VISIO)
        assert not isinstance(again, BodyRefused)
        done = graph.update_event(fresh.mailbox, fresh.event_id, body_html=again[0], location=again[1],
                                  if_match=fresh.change_key)
    assert shows_visio(done, VISIO) and "<p>note</p>" in done.body
    assert len(state_of(server.sandbox).event_versions(generated["id"])) == 2   # the refused PATCH stored nothing


def test_the_organiser_calendar_role_on_exchange_finds_rewrites_and_restores_zoom_and_webex_series(
        sandbox_factory: Any, contract_ministry: Any) -> None:
    """connectors.graph_calendar on the Outlook mailboxes of the generated organisers (the add-ins' blocks in
    HTML bodies, both markups): the scan finds the organiser's linked events with their iCalUId; an organiser's
    edit right after bascule's read makes the PATCH a 412 — the fresh copy is rewritten, the edit kept; the
    restore puts the add-in's block back and keeps the edit too (named in `kept`)."""
    from datetime import UTC, datetime

    from connectors.graph_calendar import GraphOrganiserCalendar

    server = sandbox_factory(outlook_calendars=True)
    graph_state = state_of(server.sandbox)
    added = [r for r in graph_state.events.records() if "uid" in (r.get("_truth") or {})
             and not r["_truth"]["stray"]]
    organiser = str(added[0]["organizer"]["emailAddress"]["address"])
    mine = {str(r["id"]) for r in added if r["organizer"]["emailAddress"]["address"] == organiser}
    with calendar(server) as graph:
        role = GraphOrganiserCalendar(graph)
        found = list(role.scan(organiser, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC)))
        assert {event.href for event in found} == mine and role.schedules(organiser)
        event = found[0]
        assert event.parsed.uid == graph_state.event(event.href)["iCalUId"] and event.parsed.join_keys
        server.sandbox.set_bugs(add=[f"edit_event_after_read:{event.href}"])
        fresh = role.read(organiser, event.href)          # the organiser saves right after this read
        assert fresh is not None
        written = role.rewrite(fresh, join_key=event.parsed.join_keys[0], visio_url=VISIO)
        assert not isinstance(written, Exception) and written.changed and written.conflicts == 1
        now = graph_state.event(event.href)["body"]["content"]
        assert VISIO in now and "Ordre du jour ajouté par l'organisateur." in now
        assert role.carries(role.read(organiser, event.href), VISIO)   # type: ignore[arg-type]
        again = role.rewrite(role.read(organiser, event.href), join_key=event.parsed.join_keys[0],  # type: ignore[arg-type]
                             visio_url=VISIO)
        assert not isinstance(again, Exception) and not again.changed          # nothing PATCHed twice
        graph.update_event(organiser, event.href, body_html=now.replace("</body>", "<p>Salle 12</p></body>"),
                           location=graph_state.event(event.href)["location"])
        restored = role.restore(organiser, event.href, original=written.before, rewritten=written.after,
                                sequence=0)
    body = graph_state.event(event.href)["body"]["content"]
    assert restored.kept == ("body",) and VISIO not in body and "<p>Salle 12</p>" in body
    assert "Ordre du jour ajouté par l'organisateur." in body
    assert orjson.loads(written.before)["body"]["content"].replace("</body>", "<p>Salle 12</p></body>") == body
