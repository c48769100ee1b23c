"""Meetings of the synthetic ministry, written from an ordered stream of events.

The agent loop must run in order (addresses are allocated as it goes); meetings need only their host, a
generator of their own and the pool of recent colleagues. So the agent loop emits events — "a colleague joined",
"this account hosts Zoom meetings" — and a MeetingWriter consumes them, inline for a small ministry or in a second
process for a large one. Same events in the same order, same bytes, whichever way they run.
"""

from __future__ import annotations

import base64
import multiprocessing
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import BinaryIO

import orjson

from core import MeetingKind, Platform, ReasonCode
from sandbox.generator import names
from sandbox.generator.calendars import HELD_SHARE, STRAY_SHARE, organiser_event
from sandbox.generator.identities import AgentFactory, Domains, between, pick
from sandbox.generator.platforms import (
    Invitee,
    MeetingTraits,
    graph_event,
    teams_join_url,
    webex_meeting,
    zoom_meeting,
)
from sandbox.generator.schedules import Schedule, draw_schedule, webex_rrule

_KIND_WEIGHTS: dict[Platform, tuple[tuple[MeetingKind, int], ...]] = {
    Platform.ZOOM: ((MeetingKind.WEEKLY, 28), (MeetingKind.BIWEEKLY, 10), (MeetingKind.MONTHLY_NTH_WEEKDAY, 7),
                    (MeetingKind.MONTHLY_DAY, 4), (MeetingKind.DAILY, 8), (MeetingKind.NO_FIXED_TIME, 6),
                    (MeetingKind.PERSONAL_ROOM, 5), (MeetingKind.ONE_OFF, 22), (MeetingKind.EXPIRED_SERIES, 10)),
    Platform.TEAMS: ((MeetingKind.WEEKLY, 32), (MeetingKind.BIWEEKLY, 10), (MeetingKind.MONTHLY_NTH_WEEKDAY, 8),
                     (MeetingKind.MONTHLY_DAY, 5), (MeetingKind.DAILY, 8), (MeetingKind.ONE_OFF, 27),
                     (MeetingKind.EXPIRED_SERIES, 10)),
    Platform.WEBEX: ((MeetingKind.WEEKLY, 30), (MeetingKind.BIWEEKLY, 10), (MeetingKind.MONTHLY_NTH_WEEKDAY, 8),
                     (MeetingKind.MONTHLY_DAY, 5), (MeetingKind.DAILY, 8), (MeetingKind.PERSONAL_ROOM, 5),
                     (MeetingKind.ONE_OFF, 24), (MeetingKind.EXPIRED_SERIES, 10)),
}
_MEETINGS_PER_HOST: dict[Platform, tuple[int, ...]] = {
    Platform.ZOOM: (12, 14, 16, 15, 13, 10, 8, 7, 5),
    Platform.TEAMS: (28, 27, 20, 13, 7, 5),
    Platform.WEBEX: (12, 14, 16, 15, 13, 10, 8, 7, 5),
}
_DIAL_IN = {Platform.ZOOM: 0.25, Platform.TEAMS: 0.30, Platform.WEBEX: 0.45}
MEETING_FILES = ("zoom/meetings.jsonl", "zoom/webinars.jsonl", "teams/events.jsonl", "webex/meetings.jsonl",
                 "calendars/events.jsonl")


@dataclass(frozen=True, slots=True)
class Host:
    """A source account that hosts meetings."""

    platform: Platform
    account_id: str
    email: str
    display: str
    timezone: str
    dept: str
    login: str
    site: str | None = None
    pmi: int | None = None


@dataclass(frozen=True, slots=True)
class Colleague:
    """Someone who joined the pool that invitation lists are drawn from."""

    email: str
    display: str


@dataclass(frozen=True, slots=True)
class Hosting:
    """`host` has meetings; `sequence` seeds their generator."""

    host: Host
    sequence: int


Event = Colleague | Hosting


@dataclass(frozen=True, slots=True)
class MeetingContext:
    """What every meeting needs to know about the ministry."""

    seed: int
    as_of: date
    now: datetime
    entra_tenant_id: str
    zoom_vanity: str


@dataclass
class MeetingTruth:
    """The meeting part of the ground truth, and how many lines each file got."""

    meetings: defaultdict[str, Counter[str]]
    flags: defaultdict[str, Counter[str]]
    quarantine: defaultdict[str, Counter[str]]
    lines: dict[str, int]
    calendars: Counter[str] = field(default_factory=Counter)   # organisers' own events (generator.calendars)


class MeetingWriter:
    """Consumes events in order and writes the meeting files."""

    def __init__(self, out: Path, context: MeetingContext, stack: ExitStack) -> None:
        self._context = context
        self._factory = AgentFactory(seed=context.seed, domains=Domains())  # names only, no addresses
        self._files: dict[str, BinaryIO] = {}
        for name in MEETING_FILES:
            path = out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            self._files[name] = stack.enter_context(path.open("wb", buffering=1 << 20))
        self._colleagues = _Ring(640)
        self._zoom_sequence = 0
        self._webex_sequence = 0
        self.truth = MeetingTruth(defaultdict(Counter), defaultdict(Counter), defaultdict(Counter),
                                  dict.fromkeys(MEETING_FILES, 0))

    def handle(self, events: Sequence[Event]) -> None:
        for event in events:
            if isinstance(event, Colleague):
                self._colleagues.add((event.email, event.display))
                continue
            rng = self._factory.rng(f"meetings:{event.host.platform}", event.sequence)
            if event.host.platform is Platform.ZOOM:
                self._zoom(rng, event.host)
            elif event.host.platform is Platform.TEAMS:
                self._teams(rng, event.host)
            else:
                self._webex(rng, event.host)

    def _write(self, name: str, record: dict[str, object]) -> None:
        self._files[name].write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.truth.lines[name] += 1

    # ------------------------------------------------------------------------------------------ Zoom

    def _zoom(self, rng: random.Random, host: Host) -> None:
        context = self._context
        count = rng.choices(range(len(_MEETINGS_PER_HOST[Platform.ZOOM])), _MEETINGS_PER_HOST[Platform.ZOOM])[0]
        had_personal = False
        join_host = rng.choices((context.zoom_vanity, "us02web.zoom.us", "zoom.us"), (60, 30, 10))[0]
        for _ in range(count):
            kind = self._draw_kind(rng, Platform.ZOOM)
            if kind is MeetingKind.PERSONAL_ROOM and (had_personal or host.pmi is None):
                kind = MeetingKind.WEEKLY
            had_personal |= kind is MeetingKind.PERSONAL_ROOM
            schedule = draw_schedule(rng, kind, timezone=host.timezone, as_of=context.as_of, needs_end=True)
            traits = self._traits(rng, Platform.ZOOM, host)
            self._zoom_sequence += 1
            meeting_id = 80_000_000_000 + (self._zoom_sequence * 7_919_317 + 123_456_789) % 10_000_000_000
            body = zoom_meeting(rng, meeting_id=meeting_id, host_id=host.account_id, host_email=host.email,
                                schedule=schedule, traits=traits, join_host=join_host, pmi=host.pmi,
                                as_of=context.now)
            body["_host"] = host.account_id
            body["_kind"] = str(kind)
            self._zoom_variants(body, kind, meeting_id)
            self._write("zoom/meetings.jsonl", body)
            self._count(Platform.ZOOM, kind, traits)
            self._calendar(Platform.ZOOM, host, kind, schedule, traits, join_url=str(body["join_url"]),
                           number=str(meeting_id), sip=None)
        if rng.random() < 0.01:  # a webinar add-on holder
            schedule = draw_schedule(rng, MeetingKind.ONE_OFF, timezone=host.timezone, as_of=context.as_of)
            traits = self._traits(rng, Platform.ZOOM, host, webinar=True)
            self._zoom_sequence += 1
            webinar_id = 90_000_000_000 + (self._zoom_sequence * 7_919_317 + 123_456_789) % 10_000_000_000
            body = zoom_meeting(rng, meeting_id=webinar_id, host_id=host.account_id, host_email=host.email,
                                schedule=schedule, traits=traits, join_host=join_host, pmi=None, as_of=context.now)
            body["type"] = 5
            _as_webinar(body)
            body["_host"] = host.account_id
            body["_kind"] = "webinar"
            self._write("zoom/webinars.jsonl", body)
            self.truth.flags[Platform.ZOOM]["webinar"] += 1

    def _zoom_variants(self, body: dict[str, object], kind: MeetingKind, meeting_id: int) -> None:
        """What real Zoom bodies vary in, from a generator of their own (no other draw moves):

        - a meeting scheduled from a calendar carries no `settings.meeting_invitees` (zoom.md 4.5);
        - a fixed-time series may have a deleted occurrence, a moved one and a resized one, as `_occurrence_changes`
          (indexes among the occurrences from the ministry's as-of date) that the sandbox applies to
          `occurrences[]`.
        """
        rng = self._factory.rng("zoom-variants", meeting_id)
        flags = self.truth.flags[Platform.ZOOM]
        settings = body["settings"]
        assert isinstance(settings, dict)
        if kind is not MeetingKind.PERSONAL_ROOM and rng.random() < 0.25:
            del settings["meeting_invitees"]
            flags["invitees_unknown"] += 1
        if body["type"] != 8 or kind is MeetingKind.EXPIRED_SERIES or rng.random() >= 0.12:
            return
        changes: dict[str, object] = {"deleted": [rng.choice((0, 1, 2))]}
        if rng.random() < 0.6:
            changes["moved"] = [[3, pick(rng, (60, -30, 24 * 60))]]
        if rng.random() < 0.4:
            changes["resized"] = [[4, pick(rng, (15, 90, 120))]]
        body["_occurrence_changes"] = changes
        flags["occurrence_deleted"] += 1
        flags["occurrence_moved"] += "moved" in changes
        flags["occurrence_resized"] += "resized" in changes

    # ------------------------------------------------------------------------------------------ Teams

    def _teams(self, rng: random.Random, host: Host) -> None:
        context = self._context
        count = rng.choices(range(len(_MEETINGS_PER_HOST[Platform.TEAMS])), _MEETINGS_PER_HOST[Platform.TEAMS])[0]
        for _ in range(count):
            kind = self._draw_kind(rng, Platform.TEAMS)
            schedule = draw_schedule(rng, kind, timezone=host.timezone, as_of=context.as_of)
            traits = self._traits(rng, Platform.TEAMS, host)
            assert traits.passcode is not None
            join_url, number = teams_join_url(rng, tenant_id=context.entra_tenant_id, organizer_id=host.account_id,
                                              short=rng.random() < 0.3, passcode=traits.passcode)
            variant = rng.choices(("modern", "legacy", "edited"), (75, 20, 5))[0]
            broken = schedule.recurring and rng.random() < 0.001
            headless = rng.random() < 0.001
            event = graph_event(rng, event_id=_graph_event_id(rng), organizer_name=host.display,
                                organizer_email=host.email, schedule=schedule, traits=traits, online=True,
                                join_url=join_url, meeting_number=number, body_variant=variant, as_of=context.now,
                                broken_recurrence=broken, missing_organizer=headless)
            event["_mailbox"] = host.account_id
            event["_kind"] = str(kind)
            self._write("teams/events.jsonl", event)
            self._count(Platform.TEAMS, kind, traits)
            self.truth.flags[Platform.TEAMS][f"body:{variant}"] += 1
            self.truth.flags[Platform.TEAMS]["short_join_url" if number else "classic_join_url"] += 1
            if broken:
                self.truth.quarantine[Platform.TEAMS][ReasonCode.RECURRENCE_UNPARSEABLE] += 1
            elif headless:
                self.truth.quarantine[Platform.TEAMS][ReasonCode.MEETING_WITHOUT_HOST] += 1
        if rng.random() < 0.2:  # an ordinary calendar entry, not a Teams meeting: extraction must skip it
            schedule = draw_schedule(rng, MeetingKind.ONE_OFF, timezone=host.timezone, as_of=context.as_of)
            traits = self._traits(rng, Platform.TEAMS, host)
            event = graph_event(rng, event_id=_graph_event_id(rng), organizer_name=host.display,
                                organizer_email=host.email, schedule=schedule, traits=traits, online=False,
                                join_url=None, meeting_number=None, body_variant="modern", as_of=context.now)
            event["_mailbox"] = host.account_id
            event["_kind"] = "not_online"
            self._write("teams/events.jsonl", event)
            self.truth.meetings[Platform.TEAMS]["not_online_events"] += 1

    # ------------------------------------------------------------------------------------------ Webex

    def _webex(self, rng: random.Random, host: Host) -> None:
        assert host.site is not None
        count = rng.choices(range(len(_MEETINGS_PER_HOST[Platform.WEBEX])), _MEETINGS_PER_HOST[Platform.WEBEX])[0]
        had_personal = False
        for _ in range(count):
            kind = self._draw_kind(rng, Platform.WEBEX)
            if kind is MeetingKind.PERSONAL_ROOM and had_personal:
                kind = MeetingKind.WEEKLY
            had_personal |= kind is MeetingKind.PERSONAL_ROOM
            schedule = draw_schedule(rng, kind, timezone=host.timezone, as_of=self._context.as_of)
            webinar = rng.random() < 0.01 and kind is not MeetingKind.PERSONAL_ROOM  # a personal room is no webinar
            traits = self._traits(rng, Platform.WEBEX, host, webinar=webinar)
            override = None
            headless = False
            if schedule.recurring and rng.random() < 0.002:
                override = pick(rng, ("FREQ=FORTNIGHTLY;INTERVAL=1", "FREQ=WEEKLY;BYDAY=XX", "WEEKLY"))
                self.truth.quarantine[Platform.WEBEX][ReasonCode.RECURRENCE_UNPARSEABLE] += 1
            elif rng.random() < 0.001:
                headless = True
                self.truth.quarantine[Platform.WEBEX][ReasonCode.MEETING_WITHOUT_HOST] += 1
            elif schedule.month_day is not None and rng.random() < 0.05:
                day = schedule.month_day
                rule = webex_rrule(schedule)
                assert rule is not None
                override = rule.replace(f"BYMONTHDAY={day}", f"BYMONTHDAY={day},{day + 1},{day + 2}")
                self.truth.flags[Platform.WEBEX]["multi_bymonthday"] += 1
            self._webex_sequence += 1
            number = str(20_000_000_000 + (self._webex_sequence * 7_919_317 + 654_321) % 10_000_000_000)
            body = webex_meeting(rng, meeting_id=rng.randbytes(16).hex(), meeting_number=number,
                                 host_id=host.account_id, host_name=host.display,
                                 host_email="" if headless else host.email, site=host.site, login=host.login,
                                 schedule=schedule, traits=traits, rrule_override=override,
                                 as_of=self._context.as_of)
            body["_host"] = host.account_id
            body["_kind"] = str(kind)
            # The invitee API refuses personal-room meetings: they have none to serve.
            body["_invitees"] = [] if kind is MeetingKind.PERSONAL_ROOM else [
                {"email": invitee.email, "displayName": invitee.name,
                 "coHost": invitee.email in traits.alternative_hosts} for invitee in traits.invitees]
            self._write("webex/meetings.jsonl", body)
            self._count(Platform.WEBEX, kind, traits)
            if override is None and not headless:
                self._calendar(Platform.WEBEX, host, kind, schedule, traits, join_url=str(body["webLink"]),
                               number=number, sip=str(body["sipAddress"]))

    # ------------------------------------------------------------------------------------------ calendars

    def _calendar(self, platform: Platform, host: Host, kind: MeetingKind, schedule: Schedule,
                  traits: MeetingTraits, *, join_url: str, number: str, sip: str | None) -> None:
        """The organiser's own event of a current scheduled meeting (most have one), from a generator of its own."""
        if (kind in (MeetingKind.PERSONAL_ROOM, MeetingKind.NO_FIXED_TIME, MeetingKind.EXPIRED_SERIES)
                or schedule.start is None or traits.webinar):
            return
        if kind is MeetingKind.ONE_OFF and schedule.start < self._context.now + timedelta(days=1):
            return
        rng = self._factory.rng(f"calendar:{platform}", int(number) % 1_000_000_007)
        truth = self.truth.calendars
        truth[f"{platform}_meetings"] += 1
        if rng.random() >= HELD_SHARE:
            truth["meetings_without_event"] += 1
            return
        self._organiser_event(rng, platform, host, schedule, traits, join_url=join_url, number=number, sip=sip)
        truth["events_held"] += 1
        if rng.random() < STRAY_SHARE:   # a colleague's meeting the host put in their calendar: nobody extracts it
            stray = str(70_000_000_000 + rng.randrange(10_000_000_000))
            self._organiser_event(rng, Platform.ZOOM, host, schedule, traits, number=stray, sip=None,
                                  join_url=f"https://{self._context.zoom_vanity}/j/{stray}", stray=True)
            truth["stray_events"] += 1

    def _organiser_event(self, rng: random.Random, platform: Platform, host: Host, schedule: Schedule,
                         traits: MeetingTraits, *, join_url: str, number: str, sip: str | None,
                         stray: bool = False) -> None:
        uid = str(uuid.UUID(int=rng.getrandbits(128)))
        data = organiser_event(rng, platform=str(platform), uid=uid, organiser=host.email,
                               organiser_name=host.display, traits=traits, schedule=schedule, join_url=join_url,
                               number=number, sip=sip, as_of=self._context.now)
        self._write("calendars/events.jsonl", {"organiser": host.email, "user": host.email.split("@")[0],
                                                "name": f"{uid}.ics", "platform": str(platform),
                                                "meeting": number, "stray": stray, "ics": data.decode("utf-8")})

    # ------------------------------------------------------------------------------------------ shared

    def _draw_kind(self, rng: random.Random, platform: Platform) -> MeetingKind:
        weights = _KIND_WEIGHTS[platform]
        return rng.choices([kind for kind, _ in weights], [weight for _, weight in weights])[0]

    def _traits(self, rng: random.Random, platform: Platform, host: Host, *, webinar: bool = False) -> MeetingTraits:
        topic = f"{pick(rng, names.TOPICS)} {host.dept}" + (f" – bureau {between(rng, 1, 4)}"
                                                            if rng.random() < 0.3 else "")
        agenda = f"Ordre du jour : {topic.lower()}. Merci de préparer vos éléments."
        if rng.random() < 0.1:
            agenda += " Points : " + "; ".join(rng.sample(names.TOPICS, 6)) + ". Relevé de décisions à diffuser."
        roll = rng.random()
        size = (between(rng, 151, 320) if roll < 0.003 else between(rng, 61, 150) if roll < 0.02
                else between(rng, 16, 60) if roll < 0.12 else between(rng, 2, 15))
        invitees = [Invitee(mail, display, False) for mail, display in self._colleagues.sample(rng, size)
                    if mail != host.email]
        if rng.random() < 0.12:
            for _ in range(between(rng, 1, 4)):
                _given, _surname, display, a_given, a_surname = self._factory.draw_name(rng)
                invitees.append(Invitee(f"{a_given}.{a_surname}@{pick(rng, names.EXTERNAL_DOMAINS)}", display,
                                        True))
        alternative: tuple[str, ...] = ()
        if platform is not Platform.TEAMS and rng.random() < 0.08:
            alternative = tuple(mail for mail, _ in self._colleagues.sample(rng, between(rng, 1, 2))
                                if mail != host.email)
        passcode = (f"{between(rng, 0, 999_999):06d}" if platform is Platform.ZOOM and rng.random() < 0.85
                    else None if platform is Platform.ZOOM
                    else base64.b32encode(rng.randbytes(5)).decode("ascii").lower()[:6])
        return MeetingTraits(
            topic=topic, agenda=agenda, invitees=tuple(invitees),
            waiting_room=(platform is Platform.ZOOM and rng.random() < 0.4)
            or (platform is Platform.WEBEX and rng.random() < 0.5),
            passcode=passcode, alternative_hosts=alternative, dial_in=rng.random() < _DIAL_IN[platform],
            registration=platform is not Platform.TEAMS and rng.random() < 0.015, webinar=webinar)

    def _count(self, platform: Platform, kind: MeetingKind, traits: MeetingTraits) -> None:
        self.truth.meetings[platform][str(kind)] += 1
        self.truth.meetings[platform]["total"] += 1
        flags = self.truth.flags[platform]
        if len(traits.invitees) > 150:
            flags["over_150_invitees"] += 1
        if any(invitee.external for invitee in traits.invitees):
            flags["external_guests"] += 1
        for name, value in (("waiting_room", traits.waiting_room), ("passcode", traits.passcode is not None),
                            ("alternative_hosts", bool(traits.alternative_hosts)), ("dial_in", traits.dial_in),
                            ("registration", traits.registration), ("webinar", traits.webinar)):
            if value:
                flags[name] += 1


# Fields of a meeting's Get body that the webinar Get schema does not declare (the generator builds a webinar from
# a meeting body, then takes them out).
_NOT_WEBINAR = ("assistant_id", "encrypted_password", "h323_password", "pre_schedule", "status")
_NOT_WEBINAR_SETTINGS = ("alternative_hosts_email_notification", "email_notification", "encryption_type",
                         "global_dial_in_numbers", "jbh_time", "join_before_host", "meeting_invitees",
                         "mute_upon_entry", "participant_video", "private_meeting", "use_pmi", "waiting_room",
                         "watermark")


def _as_webinar(body: dict[str, object]) -> None:
    for name in _NOT_WEBINAR:
        body.pop(name, None)
    settings = body.get("settings")
    if isinstance(settings, dict):
        for name in _NOT_WEBINAR_SETTINGS:
            settings.pop(name, None)


# ---------------------------------------------------------------------------------------------- transport

class InlineMeetings:
    """Meetings written in this process, as events arrive."""

    def __init__(self, out: Path, context: MeetingContext, stack: ExitStack) -> None:
        self._writer = MeetingWriter(out, context, stack)

    def send(self, event: Event) -> None:
        self._writer.handle((event,))

    def finish(self) -> MeetingTruth:
        return self._writer.truth


class ProcessMeetings:
    """Meetings written by a second process; events travel in ordered batches over a pipe."""

    _BATCH = 2000

    def __init__(self, out: Path, context: MeetingContext) -> None:
        spawn = multiprocessing.get_context("spawn")  # no fork of a parent that may hold threads
        self._pipe, child_end = spawn.Pipe()
        self._process = spawn.Process(target=_serve, args=(out, context, child_end), daemon=True)
        self._process.start()
        child_end.close()
        self._batch: list[Event] = []

    def send(self, event: Event) -> None:
        self._batch.append(event)
        if len(self._batch) >= self._BATCH:
            self._pipe.send(self._batch)
            self._batch = []

    def finish(self) -> MeetingTruth:
        if self._batch:
            self._pipe.send(self._batch)
        self._pipe.send(None)
        result: MeetingTruth | BaseException = self._pipe.recv()
        self._process.join(timeout=60)
        if isinstance(result, BaseException):
            raise RuntimeError("the meeting writer failed") from result
        return result

    def abort(self) -> None:
        if self._process.is_alive():
            self._process.terminate()


def _serve(out: Path, context: MeetingContext, pipe: Connection) -> None:
    try:
        with ExitStack() as stack:
            writer = MeetingWriter(out, context, stack)
            while (batch := pipe.recv()) is not None:
                writer.handle(batch)
        pipe.send(writer.truth)
    except BaseException as exc:  # the parent must learn why instead of waiting forever
        pipe.send(exc)
        raise


class _Ring:
    """The last `size` colleagues seen, for invitation lists (a bounded pool, never the whole ministry)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: list[tuple[str, str]] = []
        self._added = 0

    def add(self, item: tuple[str, str]) -> None:
        if len(self._items) < self._size:
            self._items.append(item)
        else:
            self._items[self._added % self._size] = item
        self._added += 1

    def sample(self, rng: random.Random, count: int) -> list[tuple[str, str]]:
        """`count` distinct colleagues (all of them if fewer); cheaper than rng.sample for small counts."""
        items = self._items
        size = len(items)
        if count >= size:
            return list(items)
        if count * 4 > size:
            return rng.sample(items, count)
        chosen: dict[int, None] = {}
        while len(chosen) < count:
            chosen[int(rng.random() * size)] = None
        return [items[index] for index in chosen]


def _graph_event_id(rng: random.Random) -> str:
    return "AAMkA" + base64.urlsafe_b64encode(rng.randbytes(105)).decode("ascii").rstrip("=")

