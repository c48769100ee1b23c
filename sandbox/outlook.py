"""The generated organisers' Zoom and Webex events as Exchange Online holds them (contracts/calendars.md §1.1), for
the Graph stand-in when `SandboxConfig.outlook_calendars` is set: the ministry keeps its calendars in Outlook.

Each object of `calendars/events.jsonl` whose organiser has a mailbox in the tenant becomes a Graph event of that
mailbox: subject, start/end in the organiser's zone, the series' recurrence, attendees, `iCalUId` (the hex form
Exchange gives a series: the same UID every attendee holds), `isOnlineMeeting: false` and provider `unknown` (the
enum knows no Zoom or Webex), the join link in the location, and an HTML body as the add-ins leave it: the
organiser's own lines first, then the invitation block the add-in appended — variants, since the markup is not
documented: one `<div>` of lines joined by `<br>`, or `<p>` lines between two underscore separator lines.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from icalendar import Calendar

from sandbox.generator.calendars import organiser_records

__all__ = ["BLOCK_STARTS", "outlook_events"]

# The first line of each platform's invitation block, as the generator writes it (sandbox.generator.calendars).
BLOCK_STARTS = ("vous invite à une réunion Zoom planifiée.", "is inviting you to a scheduled Zoom meeting.",
                "Rejoindre la réunion Webex", "Join Webex meeting")
_SEPARATOR = '<div><span style="color:#5F5F5F">' + "_" * 60 + "</span></div>"
_DAYS = {"MO": "monday", "TU": "tuesday", "WE": "wednesday", "TH": "thursday", "FR": "friday", "SA": "saturday",
         "SU": "sunday"}
_INDEX = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}


def outlook_events(ministry: Path, mailbox_of: Any) -> Iterator[dict[str, Any]]:
    """Graph event records for the generated organiser events; `mailbox_of(address)` → Graph user or None."""
    for record in organiser_records(ministry):
        user = mailbox_of(str(record["organiser"]))
        if user is not None:
            yield _event(record, user)


def _event(record: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    calendar = Calendar.from_ical(record["ics"])
    master = next(c for c in calendar.walk("VEVENT") if "RECURRENCE-ID" not in c)
    uid = str(master["UID"])
    digest = hashlib.sha256(uid.encode()).digest()
    start, end = master.decoded("DTSTART"), master.decoded("DTEND")
    zone = str(master["DTSTART"].params.get("TZID") or "UTC")
    rule = master.get("RRULE")
    description = str(master.get("DESCRIPTION") or "")
    location = {"displayName": str(master.get("LOCATION") or ""), "locationType": "default",
                "uniqueIdType": "unknown"}
    organiser = master["ORGANIZER"]
    attendees = master.get("ATTENDEE") or []
    attendees = attendees if isinstance(attendees, list) else [attendees]
    body = _body(description, variant=digest[0] % 2)
    return {
        "id": "AAMkAG" + base64.urlsafe_b64encode(digest + b"outlook").decode().rstrip("="),
        "createdDateTime": "2026-01-05T08:00:00Z", "lastModifiedDateTime": "2026-01-05T08:00:00Z",
        "changeKey": base64.b64encode(digest[:12]).decode(),
        "iCalUId": "040000008200E00074C5B7101A82E00800000000" + digest[:16].hex().upper(),
        "subject": str(master.get("SUMMARY") or ""), "bodyPreview": html.unescape(description)[:255],
        "body": {"contentType": "html", "content": body},
        "start": {"dateTime": start.replace(tzinfo=None).isoformat(timespec="seconds") + ".0000000",
                  "timeZone": zone},
        "end": {"dateTime": end.replace(tzinfo=None).isoformat(timespec="seconds") + ".0000000", "timeZone": zone},
        "originalStartTimeZone": zone, "originalEndTimeZone": zone,
        "type": "seriesMaster" if rule else "singleInstance",
        "recurrence": _recurrence(rule, start.date() if isinstance(start, datetime) else start) if rule else None,
        "location": location, "locations": [location] if location["displayName"] else [],
        "isOrganizer": True, "isCancelled": False, "isAllDay": False, "isOnlineMeeting": False,
        "onlineMeetingProvider": "unknown", "onlineMeeting": None, "showAs": "busy", "importance": "normal",
        "sensitivity": "normal", "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "organizer": {"emailAddress": {"name": str(organiser.params.get("CN") or ""),
                                       "address": str(organiser).removeprefix("mailto:")}},
        "attendees": [{"type": "required", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                       "emailAddress": {"name": str(a.params.get("CN") or ""),
                                        "address": str(a).removeprefix("mailto:")}} for a in attendees],
        "_mailbox": str(user["id"]),
        "_truth": {"platform": record["platform"], "meeting": record["meeting"], "stray": record["stray"],
                   "uid": uid},
    }


def _body(description: str, *, variant: int) -> str:
    """The organiser's lines as paragraphs, then the add-in's block (`variant` 0: one div of <br> lines; 1: <p>
    lines between separators)."""
    at = min((i for i in (description.find(start) for start in BLOCK_STARTS) if i >= 0), default=0)
    at = description.rfind("\n", 0, at) + 1 if at else 0
    agenda, block = description[:at].strip(), description[at:]
    own = "".join(f"<p>{html.escape(line)}</p>\r\n" for line in agenda.splitlines() if line.strip())
    lines = [_line(line) for line in block.splitlines()]
    if variant == 0:
        added = '<div class="x_addin">' + "<br>\r\n".join(lines) + "</div>\r\n"
    else:
        added = (_SEPARATOR + "\r\n" + "".join(f"<p>{line or '&nbsp;'}</p>\r\n" for line in lines) + _SEPARATOR
                 + "\r\n")
    return ('<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n</head>'
            f"<body>\r\n{own}{added}</body></html>\r\n")


def _line(text: str) -> str:
    escaped = html.escape(text)
    if text.strip().startswith("https://"):
        url = html.escape(text.strip())
        return f'<a href="{url}">{url}</a>'
    return escaped


def _recurrence(rule: Any, start: date) -> dict[str, Any]:
    """A Graph recurrence for the generator's rules (weekly, monthly by day or nth weekday, daily)."""
    freq = str(rule.get("FREQ", ["WEEKLY"])[0])
    interval = int(rule.get("INTERVAL", [1])[0])
    days = [str(d) for d in rule.get("BYDAY", [])]
    pattern: dict[str, Any] = {"interval": interval, "firstDayOfWeek": "monday", "month": 0, "dayOfMonth": 0,
                               "index": "first", "daysOfWeek": []}
    if freq == "DAILY":
        pattern["type"] = "daily"
    elif freq == "MONTHLY" and days:
        nth, day = int(days[0][:-2] or 1), days[0][-2:]
        pattern.update(type="relativeMonthly", daysOfWeek=[_DAYS[day]], index=_INDEX.get(nth, "first"))
    elif freq == "MONTHLY":
        pattern.update(type="absoluteMonthly", dayOfMonth=int(rule.get("BYMONTHDAY", [start.day])[0]))
    else:
        pattern.update(type="weekly", daysOfWeek=[_DAYS[d[-2:]] for d in days] or [
            _DAYS[("MO", "TU", "WE", "TH", "FR", "SA", "SU")[start.weekday()]]])
    until = rule.get("UNTIL")
    ending: dict[str, Any] = {"type": "noEnd", "startDate": start.isoformat(), "endDate": "0001-01-01",
                              "recurrenceTimeZone": "Romance Standard Time", "numberOfOccurrences": 0}
    if until:
        moment = until[0]
        ending.update(type="endDate", endDate=(moment.astimezone(UTC).date() if isinstance(moment, datetime)
                                               else moment).isoformat())
    return {"pattern": pattern, "range": ending}
