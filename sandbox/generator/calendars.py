"""Organisers' own calendar events for their Zoom and Webex meetings (contracts/calendars.md §1.1, §3): what the
Outlook/Thunderbird add-ins and the platforms' "add to calendar" leave in the organiser's CalDAV calendar — the
series (RRULE, time zone), the attendees, the join link in LOCATION and the platform's invitation block in
DESCRIPTION (French or English wording, the organiser's agenda before it), sometimes a moved occurrence as a
RECURRENCE-ID override — written to `calendars/events.jsonl`, one object per line with the organiser's user name,
so that tests can PUT them into a CalDAV server (`organiser_events`).

Most scheduled meetings have their event; some were scheduled in the platform's portal and have none; a few events
carry the link of a meeting no extracted account hosts (a colleague's licence, a deleted meeting).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from icalendar import Calendar, Event, vCalAddress, vRecur

from sandbox.generator.platforms import MeetingTraits
from sandbox.generator.schedules import Schedule, webex_rrule

__all__ = ["HELD_SHARE", "STRAY_SHARE", "organiser_event", "organiser_events", "organiser_records"]

HELD_SHARE = 0.85      # scheduled meetings whose organiser's calendar holds the event
STRAY_SHARE = 0.03     # hosts with one more event whose link names a meeting nobody extracts
PRODIDS = ("-//Zoom Video Communications//Zoom Outlook Plugin//FR", "-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN",
           "-//Cisco//Webex Scheduler//FR")


def _grouped(number: str) -> str:
    return " ".join((number[:-7], number[-7:-4], number[-4:])) if len(number) > 8 else number


def _zoom_block(rng: random.Random, *, host: str, topic: str, join_url: str, meeting_id: str,
                passcode: str | None, dial_in: bool) -> str:
    french = rng.random() < 0.8
    lines = ([f"{host} vous invite à une réunion Zoom planifiée.", "", f"Sujet : {topic}", "",
              "Participer à la réunion Zoom", join_url, "", f"ID de réunion : {_grouped(meeting_id)}"]
             if french else
             [f"{host} is inviting you to a scheduled Zoom meeting.", "", f"Topic: {topic}", "", "Join Zoom Meeting",
              join_url, "", f"Meeting ID: {_grouped(meeting_id)}"])
    if passcode:
        lines.append(f"Code secret : {passcode}" if french else f"Passcode: {passcode}")
    if dial_in:
        lines += ["", "---", "", "Mobile en un clic" if french else "One tap mobile",
                  f"+33170379729,,{meeting_id}# France", "", "Composez un numéro en fonction de votre emplacement"
                  if french else "Dial by your location", "        +33 1 7037 9729 France",
                  "        +33 1 7095 0103 France", "", "Trouvez votre numéro local : https://zoom.us/u/abc123"
                  if french else "Find your local number: https://zoom.us/u/abc123"]
    return "\n".join(lines)


def _webex_block(rng: random.Random, *, join_url: str, number: str, passcode: str | None, sip: str,
                 dial_in: bool) -> str:
    french = rng.random() < 0.8
    lines = (["Rejoindre la réunion Webex", join_url, "", f"Numéro de la réunion (code d'accès) : {_grouped(number)}"]
             if french else ["Join Webex meeting", join_url, "", f"Meeting number (access code): {_grouped(number)}"])
    if passcode:
        lines.append(f"Mot de passe de la réunion : {passcode}" if french else f"Meeting password: {passcode}")
    if dial_in:
        lines += ["", "Rejoindre par téléphone" if french else "Join by phone", "+33-1-7091-8600 France Toll"]
    lines += ["", "Rejoindre à partir d'un système vidéo ou d'une application" if french else
              "Join from a video system or application", f"Composez {sip}" if french else f"Dial {sip}"]
    return "\n".join(lines)


def organiser_event(rng: random.Random, *, platform: str, uid: str, organiser: str, organiser_name: str,
                    traits: MeetingTraits, schedule: Schedule, join_url: str, number: str, sip: str | None,
                    as_of: datetime) -> bytes:
    """The organiser's iCalendar object of one Zoom or Webex meeting."""
    assert schedule.start is not None
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", (as_of - timedelta(days=rng.randint(1, 200))).astimezone(UTC))
    event.add("created", (as_of - timedelta(days=rng.randint(200, 400))).astimezone(UTC))
    event.add("dtstart", schedule.start)
    event.add("dtend", schedule.start + timedelta(minutes=schedule.duration))
    rule = webex_rrule(schedule)
    if rule is not None:
        event.add("rrule", vRecur.from_ical(rule))
    event.add("summary", traits.topic)
    event.add("location", join_url)
    block = (_zoom_block(rng, host=organiser_name, topic=traits.topic, join_url=join_url, meeting_id=number,
                         passcode=traits.passcode, dial_in=traits.dial_in) if platform == "zoom" else
             _webex_block(rng, join_url=join_url, number=number, passcode=traits.passcode,
                          sip=sip or f"{number}@webex.com", dial_in=traits.dial_in))
    agenda = traits.agenda.strip()
    event.add("description", (f"{agenda}\n\n" if agenda and rng.random() < 0.6 else "") + block)
    organizer = vCalAddress(f"mailto:{organiser}")
    organizer.params["CN"] = organiser_name
    event.add("organizer", organizer)
    for invitee in traits.invitees:
        attendee = vCalAddress(f"mailto:{invitee.email}")
        attendee.params["CN"] = invitee.name
        attendee.params["PARTSTAT"] = rng.choice(("NEEDS-ACTION", "ACCEPTED", "ACCEPTED", "TENTATIVE"))
        attendee.params["RSVP"] = "TRUE"
        event.add("attendee", attendee)
    event.add("sequence", rng.choice((0, 0, 0, 1, 2)))
    calendar = Calendar()
    calendar.add("prodid", rng.choice(PRODIDS))
    calendar.add("version", "2.0")
    calendar.add_component(event)
    weekly = schedule.freq == "WEEKLY" and schedule.interval == 1 and len(schedule.byday) == 1
    if weekly and rng.random() < 0.1:   # the second occurrence moved an hour later, with its own copy of the block
        moved = Event()
        for name in ("uid", "dtstamp", "summary", "location", "description", "organizer", "sequence"):
            moved[name] = event[name]
        if "attendee" in event:
            moved["attendee"] = event["attendee"]
        second = schedule.start + timedelta(days=7)
        moved.add("recurrence-id", second)
        moved.add("dtstart", second + timedelta(hours=1))
        moved.add("dtend", second + timedelta(hours=1, minutes=schedule.duration))
        calendar.add_component(moved)
    calendar.add_missing_timezones()
    data: bytes = calendar.to_ical()
    return data


def organiser_records(ministry: Path) -> Iterator[dict[str, Any]]:
    """The records of `calendars/events.jsonl` ({organiser, user, name, platform, meeting, stray, ics})."""
    path = ministry / "calendars" / "events.jsonl"
    if not path.exists():
        return
    with path.open("rb") as lines:
        for line in lines:
            yield orjson.loads(line)


def organiser_events(ministry: Path) -> Iterator[tuple[str, str, bytes]]:
    """(CalDAV user, object name, iCalendar bytes) of each generated organiser event, to PUT into a server."""
    for record in organiser_records(ministry):
        yield str(record["user"]), str(record["name"]), str(record["ics"]).encode("utf-8")
