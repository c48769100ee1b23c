"""Bad records of the three platforms, as their APIs send them: each kind, the payload, the reason it gets.

Each case is one record put through the platform connector's own parser and then stored by the extract flow's
page tasks, beside good records; `loaded` cases are stored anyway with the change reported.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core import Platform

Payload = dict[str, Any] | Any


@dataclass(frozen=True)
class PayloadCase:
    """One kind of bad record of a platform stream (`users` or `meetings`)."""

    kind: str
    platform: Platform
    stream: str
    payloads: tuple[Payload, ...]          # what the listing returns (a repeat is two payloads)
    record_key: str
    reason: str
    loaded: bool = False
    host: str = "host-1"
    extra: dict[str, Any] = field(default_factory=dict)


def zoom_user(user_id: str, **changes: Any) -> dict[str, Any]:
    user = {"id": user_id, "first_name": "Jeanne", "last_name": "Martin", "email": f"{user_id}@culture.gouv.fr",
            "type": 2, "status": "active", "dept": "DNUM-SDI", "role_id": "2", "timezone": "Europe/Paris",
            "last_login_time": "2026-11-02T08:00:00Z"}
    user.update(changes)
    return user


def zoom_meeting(meeting_id: int, **changes: Any) -> dict[str, Any]:
    meeting: dict[str, Any] = {
        "id": meeting_id, "uuid": "abc==", "host_id": "host-1", "host_email": "host-1@culture.gouv.fr",
        "topic": "Comité de pilotage", "type": 8, "start_time": "2026-12-07T09:00:00Z", "duration": 60,
        "timezone": "Europe/Paris", "join_url": f"https://zoom.us/j/{meeting_id}",
        "recurrence": {"type": 2, "repeat_interval": 1, "weekly_days": "2", "end_times": 20},
        "settings": {"waiting_room": True, "approval_type": 2, "audio": "voip",
                     "meeting_invitees": [{"email": "paul.durand@culture.gouv.fr"}]}}
    return _changed(meeting, changes)


def graph_user(user_id: str, **changes: Any) -> dict[str, Any]:
    user = {"id": user_id, "displayName": "Jeanne Martin", "mail": f"{user_id}@culture.gouv.fr",
            "userPrincipalName": f"{user_id}@culture.gouv.fr", "accountEnabled": True,
            "proxyAddresses": [f"SMTP:{user_id}@culture.gouv.fr"], "assignedLicenses": [
                {"disabledPlans": [], "skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900"}]}
    user.update(changes)
    return user


def graph_event(event_id: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": event_id, "subject": "Point hebdo", "type": "seriesMaster", "isOrganizer": True,
        "isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness", "isCancelled": False,
        "start": {"dateTime": "2026-12-07T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-07T10:00:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "Romance Standard Time",
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"],
                                   "firstDayOfWeek": "sunday"},
                       "range": {"type": "noEnd", "startDate": "2026-12-07", "recurrenceTimeZone":
                                 "Romance Standard Time"}},
        "organizer": {"emailAddress": {"address": "host-1@culture.gouv.fr"}},
        "attendees": [{"emailAddress": {"address": "paul.durand@culture.gouv.fr"}}],
        "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0"}}
    return _changed(event, changes)


def webex_person(person_id: str, **changes: Any) -> dict[str, Any]:
    person = {"id": person_id, "emails": [f"{person_id.lower()}@culture.gouv.fr"], "displayName": "Jeanne Martin",
              "licenses": ["LIC-MEETING"], "invitePending": "false", "loginEnabled": "true"}
    person.update(changes)
    return person


def webex_meeting(series_id: str, **changes: Any) -> dict[str, Any]:
    meeting: dict[str, Any] = {
        "id": series_id, "meetingNumber": "2650000000", "title": "Réunion de service",
        "start": "2026-12-07T10:00:00+01:00", "end": "2026-12-07T11:00:00+01:00", "timezone": "Europe/Paris",
        "recurrence": "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO", "hostEmail": "host-1@culture.gouv.fr",
        "webLink": "https://culture-gouv.webex.com/culture-gouv/j.php?MTID=m0123456789abcdef",
        "scheduledType": "meeting", "state": "active"}
    return _changed(meeting, changes)


class _Drop:
    """A field removed from the payload."""


_DROP = _Drop()


def _changed(record: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`record` with fields replaced, added, or removed (`_DROP`)."""
    for name, value in changes.items():
        if value is _DROP:
            record.pop(name, None)
        else:
            record[name] = value
    return record
ZOOM, TEAMS, WEBEX = Platform.ZOOM, Platform.TEAMS, Platform.WEBEX

CASES: tuple[PayloadCase, ...] = (
    # Zoom users
    PayloadCase("Zoom user e-mail not an address", ZOOM, "users", (zoom_user("z-bad-email", email="jeanne.martin"),),
                "zoom:user:z-bad-email", "INVALID_EMAIL"),
    PayloadCase("Zoom user without type", ZOOM, "users", ({k: v for k, v in zoom_user("z-no-type").items()
                                                          if k != "type"},), "zoom:user:z-no-type", "MALFORMED_RECORD"),
    PayloadCase("Zoom user type as a list", ZOOM, "users", (zoom_user("z-type-list", type=[2]),),
                "zoom:user:z-type-list", "MALFORMED_RECORD"),
    PayloadCase("Zoom user id as a list", ZOOM, "users", (zoom_user("z-id-list", id=["z-id-list"]),),
                "zoom:user:(list id)", "MALFORMED_RECORD"),
    PayloadCase("Zoom user status unknown", ZOOM, "users", (zoom_user("z-status", status="suspended"),),
                "zoom:user:z-status", "MALFORMED_RECORD"),
    PayloadCase("Zoom user that is not an object", ZOOM, "users", ("z-not-an-object",), "zoom:user:(str item)",
                "MALFORMED_RECORD"),
    PayloadCase("Zoom user first name with NUL", ZOOM, "users", (zoom_user("z-nul", first_name="Jea\x00nne"),),
                "zoom:user:z-nul", "CONTROL_CHARACTERS", loaded=True),
    PayloadCase("Zoom user department longer than its column", ZOOM, "users", (zoom_user("z-dept", dept="D" * 900),),
                "zoom:user:z-dept", "VALUE_TRUNCATED", loaded=True),
    PayloadCase("Zoom user id longer than its column", ZOOM, "users",
                (zoom_user("z" * 300, email="z-long@culture.gouv.fr"),),
                f"zoom:user:{'z' * 300}", "VALUE_TOO_LONG"),
    PayloadCase("Zoom user id with a control character", ZOOM, "users",
                (zoom_user("z-ctl\x07", email="z-ctl@culture.gouv.fr"),),
                "zoom:user:z-ctl", "MALFORMED_RECORD"),  # the quarantine's own key is cleaned
    PayloadCase("Zoom user listed twice", ZOOM, "users", (zoom_user("z-twice"), zoom_user("z-twice", dept="Other")),
                "zoom:user:z-twice#duplicate", "DUPLICATE_SOURCE_ID", loaded=True),
    # Zoom meetings
    PayloadCase("Zoom meeting of unknown type without recurrence", ZOOM, "meetings",
                (zoom_meeting(81000000001, type=77, recurrence=_DROP),), "zoom:meeting:81000000001",
                "MEETING_TYPE_UNKNOWN"),
    PayloadCase("Zoom fixed-time series without recurrence", ZOOM, "meetings",
                (zoom_meeting(81000000002, recurrence=_DROP),), "zoom:meeting:81000000002",
                "RECURRENCE_UNPARSEABLE"),
    PayloadCase("Zoom recurrence of unknown type", ZOOM, "meetings",
                (zoom_meeting(81000000003, recurrence={"type": 9, "repeat_interval": 1}),),
                "zoom:meeting:81000000003", "RECURRENCE_UNPARSEABLE"),
    PayloadCase("Zoom weekly_days out of range", ZOOM, "meetings",
                (zoom_meeting(81000000004, recurrence={"type": 2, "weekly_days": "9", "end_times": 3}),),
                "zoom:meeting:81000000004", "RECURRENCE_UNPARSEABLE"),
    PayloadCase("Zoom meeting in an unknown time zone", ZOOM, "meetings",
                (zoom_meeting(81000000005, timezone="Mars/Olympus_Mons"),), "zoom:meeting:81000000005",
                "RECURRENCE_UNPARSEABLE"),
    PayloadCase("Zoom meeting id as a string", ZOOM, "meetings", (zoom_meeting(81000000006, id="81000000006"),),
                "zoom:meeting:81000000006", "MALFORMED_RECORD"),
    PayloadCase("Zoom settings as a list", ZOOM, "meetings", (zoom_meeting(81000000007, settings=["waiting_room"]),),
                "zoom:meeting:81000000007", "MALFORMED_RECORD"),
    PayloadCase("Zoom occurrences as a string", ZOOM, "meetings",
                (zoom_meeting(81000000008, occurrences="none"),), "zoom:meeting:81000000008", "MALFORMED_RECORD"),
    PayloadCase("Zoom occurrence id not a number", ZOOM, "meetings",
                (zoom_meeting(81000000009, occurrences=[{"occurrence_id": "soon", "status": "deleted"}]),),
                "zoom:meeting:81000000009", "MALFORMED_RECORD"),
    PayloadCase("Zoom start_time as a number", ZOOM, "meetings", (zoom_meeting(81000000010, duration=[60],
                                                                              start_time=5),),
                "zoom:meeting:81000000010", "RECURRENCE_UNPARSEABLE"),
    PayloadCase("Zoom topic with control characters", ZOOM, "meetings",
                (zoom_meeting(81000000011, topic="Comité\x1b[0m\x00"),), "zoom:meeting:81000000011",
                "CONTROL_CHARACTERS", loaded=True),
    PayloadCase("Zoom meeting listed twice", ZOOM, "meetings", (zoom_meeting(81000000012), zoom_meeting(81000000012)),
                "zoom:meeting:81000000012#duplicate", "DUPLICATE_SOURCE_ID", loaded=True),
    # Graph users
    PayloadCase("Entra user without id", TEAMS, "users", (graph_user("", id=None),), "teams:user:", "MALFORMED_RECORD"),
    PayloadCase("Entra user with neither mail nor UPN an address", TEAMS, "users",
                (graph_user("g-no-mail", mail=None, userPrincipalName="g-no-mail"),), "teams:user:g-no-mail",
                "INVALID_EMAIL"),
    PayloadCase("Entra assignedLicenses as a string", TEAMS, "users",
                (graph_user("g-licences", assignedLicenses="E3"),), "teams:user:g-licences", "MALFORMED_RECORD"),
    PayloadCase("Entra proxyAddresses as a string", TEAMS, "users",
                (graph_user("g-proxy", proxyAddresses="SMTP:g-proxy@culture.gouv.fr"),), "teams:user:g-proxy",
                "MALFORMED_RECORD"),
    PayloadCase("Entra user that is not an object", TEAMS, "users", ([1, 2],), "teams:user:(list item)",
                "MALFORMED_RECORD"),
    PayloadCase("Entra removal without id", TEAMS, "users", ({"@removed": {"reason": "deleted"}},),
                "teams:user:(no id)", "MALFORMED_RECORD"),
    PayloadCase("Entra display name longer than its column", TEAMS, "users",
                (graph_user("g-long", displayName="N" * 800),), "teams:user:g-long", "VALUE_TRUNCATED", loaded=True),
    # Graph events
    PayloadCase("Teams series master without recurrence", TEAMS, "meetings",
                (graph_event("evt-no-rule", recurrence=_DROP),), "teams:meeting:evt-no-rule",
                "RECURRENCE_UNPARSEABLE"),
    PayloadCase("Teams recurrence in an unknown Windows zone", TEAMS, "meetings",
                (graph_event("evt-zone", recurrence={"pattern": {"type": "weekly", "interval": 1,
                                                                 "daysOfWeek": ["monday"]},
                                                     "range": {"type": "noEnd",
                                                               "recurrenceTimeZone": "Atlantis Standard Time"}}),),
                "teams:meeting:evt-zone", "RECURRENCE_UNPARSEABLE"),
    PayloadCase("Teams event without an organiser address", TEAMS, "meetings",
                (graph_event("evt-no-organizer", organizer={"emailAddress": {}}),), "teams:meeting:evt-no-organizer",
                "MEETING_WITHOUT_HOST"),
    PayloadCase("Teams meeting without joinUrl", TEAMS, "meetings",
                (graph_event("evt-no-join", onlineMeeting={}),), "teams:meeting:evt-no-join", "MALFORMED_RECORD"),
    PayloadCase("Teams attendees as a string", TEAMS, "meetings",
                (graph_event("evt-attendees", attendees="paul.durand@culture.gouv.fr"),),
                "teams:meeting:evt-attendees", "MALFORMED_RECORD"),
    PayloadCase("Teams event without start", TEAMS, "meetings", (graph_event("evt-no-start", start=_DROP),),
                "teams:meeting:evt-no-start", "MALFORMED_RECORD"),
    PayloadCase("Teams event id as a number", TEAMS, "meetings", (graph_event("evt-int", id=12),),
                "teams:meeting:12", "MALFORMED_RECORD"),
    # Webex people
    PayloadCase("Webex person without e-mail", WEBEX, "users", (webex_person("W-NO-MAIL", emails=[]),),
                "webex:user:W-NO-MAIL", "MISSING_MAIL"),
    PayloadCase("Webex emails as a string", WEBEX, "users", (webex_person("W-STR", emails="w@culture.gouv.fr"),),
                "webex:user:W-STR", "MALFORMED_RECORD"),
    PayloadCase("Webex e-mail not an address", WEBEX, "users", (webex_person("W-BAD", emails=["w-bad"]),),
                "webex:user:W-BAD", "INVALID_EMAIL"),
    PayloadCase("Webex licenses as a string", WEBEX, "users", (webex_person("W-LIC", licenses="LIC-MEETING"),),
                "webex:user:W-LIC", "MALFORMED_RECORD"),
    PayloadCase("Webex person id as an object", WEBEX, "users", (webex_person("W-OBJ", id={"value": "x"}),),
                "webex:user:(dict id)", "MALFORMED_RECORD"),
    # Webex meetings
    PayloadCase("Webex RRULE that is not one", WEBEX, "meetings",
                (webex_meeting("S-RULE", recurrence="EVERY SECOND TUESDAY"),), "webex:meeting:S-RULE",
                "RECURRENCE_UNPARSEABLE"),
    PayloadCase("Webex series without start", WEBEX, "meetings", (webex_meeting("S-START", start=_DROP),),
                "webex:meeting:S-START", "MALFORMED_RECORD"),
    PayloadCase("Webex telephony as a list", WEBEX, "meetings", (webex_meeting("S-TEL", telephony=["+33"]),),
                "webex:meeting:S-TEL", "MALFORMED_RECORD"),
    PayloadCase("Webex title with NUL", WEBEX, "meetings", (webex_meeting("S-TITLE", title="Réunion\x00 de service"),),
                "webex:meeting:S-TITLE", "CONTROL_CHARACTERS", loaded=True),
)


def good(platform: Platform, stream: str) -> tuple[Payload, ...]:
    """Good records of a stream, stored beside the bad ones (the rest of the run must be complete)."""
    makers: dict[tuple[Platform, str], Callable[[int], Payload]] = {
        (ZOOM, "users"): lambda n: zoom_user(f"z-good-{n}"),
        (ZOOM, "meetings"): lambda n: zoom_meeting(82000000000 + n),
        (TEAMS, "users"): lambda n: graph_user(f"g-good-{n}"),
        (TEAMS, "meetings"): lambda n: graph_event(f"evt-good-{n}"),
        (WEBEX, "users"): lambda n: webex_person(f"W-GOOD-{n}"),
        (WEBEX, "meetings"): lambda n: webex_meeting(f"S-GOOD-{n}"),
    }
    return tuple(copy.deepcopy(makers[(platform, stream)](n)) for n in range(3))
