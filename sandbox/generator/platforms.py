"""Platform-shaped payloads (Zoom API v2, Graph v1.0, Webex /v1) for users, licences and meetings.

Every builder is a pure function of its arguments and the random generator it is given. Keys starting with
`_` are the sandbox's own bookkeeping (mailbox, host, ground truth) and are never served.
"""

from __future__ import annotations

import base64
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from core import MeetingKind
from core.timezones import IANA_TO_WINDOWS
from sandbox.generator.identities import between, pick
from sandbox.generator.schedules import Schedule, graph_recurrence, utc_z, webex_rrule, zoom_recurrence

TEAMS1_PLAN_ID = "57ff2da0-773e-42df-b2af-ffb7a2317929"


@dataclass(frozen=True, slots=True)
class Sku:
    """A Microsoft 365 product as subscribedSkus shows it."""

    part_number: str
    sku_id: str
    name: str
    plans: tuple[tuple[str, str], ...]

    @property
    def has_teams(self) -> bool:
        return any(plan_id == TEAMS1_PLAN_ID for _name, plan_id in self.plans)


_EXCHANGE = ("EXCHANGE_S_ENTERPRISE", "efb87545-963c-4e0d-99df-69c6916d9eb0")
_EXCHANGE_STD = ("EXCHANGE_S_STANDARD", "9aaf7827-d63c-4b61-89c3-182f06f82e5c")
_SHAREPOINT = ("SHAREPOINTENTERPRISE", "5dbe027f-2339-4123-9542-606e4d348a72")
_TEAMS = ("TEAMS1", TEAMS1_PLAN_ID)
_MCO = ("MCOSTANDARD", "0feaeb32-d00e-4d66-bd5a-43b5b83db82c")

# The well-known SKU ids are Microsoft's; the "no Teams" bundle id is invented for the sandbox.
SKUS: dict[str, Sku] = {
    "E3": Sku("ENTERPRISEPACK", "6fd2c87f-b296-42f0-b197-1e91e994b900", "Office 365 E3",
              (_EXCHANGE, _SHAREPOINT, _TEAMS, _MCO)),
    "E1": Sku("STANDARDPACK", "18181a46-0d4e-45cd-891e-60aabd171b4e", "Office 365 E1",
              (_EXCHANGE_STD, _SHAREPOINT, _TEAMS, _MCO)),
    "M365E3": Sku("SPE_E3", "05e9a617-0261-4cee-bb44-138d3ef5d965", "Microsoft 365 E3",
                  (_EXCHANGE, _SHAREPOINT, _TEAMS, _MCO)),
    "E3_NO_TEAMS": Sku("O365_w/o_Teams_Bundle_M3", "a4585165-0533-458a-97e3-c400570268c4",
                       "Office 365 E3 (no Teams)", (_EXCHANGE, _SHAREPOINT, _MCO)),
    "TEAMS_ENT": Sku("Microsoft_Teams_Enterprise_New", "7e31c0d9-9551-471d-836f-32ee72be4a01",
                     "Microsoft Teams Enterprise", (_TEAMS, _MCO)),
    "EXCHANGE": Sku("EXCHANGESTANDARD", "4b9405b0-7788-4568-add1-99614e613b69", "Exchange Online (Plan 1)",
                    (_EXCHANGE_STD,)),
    "PBI_FREE": Sku("POWER_BI_STANDARD", "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235", "Power BI (free)",
                    (("BI_AZURE_P0", "2049e525-b859-401b-b2a0-e0a31c4b1fe4"),)),
}


def rand_id(rng: random.Random, length: int = 22) -> str:
    """A Zoom-style opaque id (URL-safe base64 characters)."""
    return base64.urlsafe_b64encode(rng.randbytes(18)).decode("ascii")[:length]


def rand_uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def webex_id(kind: str, value: str) -> str:
    """Webex ids are base64 of a ciscospark:// URI, unpadded."""
    return base64.b64encode(f"ciscospark://us/{kind}/{value}".encode()).decode("ascii").rstrip("=")


def iso(moment: datetime) -> str:
    """2026-09-07T08:00:00Z (isoformat is several times cheaper than strftime)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def graph_time(moment: datetime) -> str:
    """Graph dateTimeTimeZone text in UTC, seven fractional digits as the service prints them."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + ".0000000"


class Invitee(NamedTuple):
    """Someone on an invitation list (a named tuple: hundreds of thousands are made per run)."""

    email: str
    name: str
    external: bool


@dataclass(frozen=True, slots=True)
class MeetingTraits:
    """Settings drawn once per meeting and written the way each platform writes them."""

    topic: str
    agenda: str
    invitees: tuple[Invitee, ...]
    waiting_room: bool
    passcode: str | None
    alternative_hosts: tuple[str, ...]
    dial_in: bool
    registration: bool
    webinar: bool


# ------------------------------------------------------------------------------------------------- Zoom

def zoom_user(rng: random.Random, *, user_id: str | None, email: str, first: str, last: str, user_type: int,
              status: str, pmi: int | None, timezone: str, dept: str, role_id: str, sso_id: str | None,
              as_of: datetime) -> dict[str, object]:
    """A Zoom user as `GET /users/{id}` returns it (the list shows a subset)."""
    user: dict[str, object] = {}
    if user_id is not None:  # pending users have no id
        user["id"] = user_id
    user |= {"first_name": first, "last_name": last, "display_name": f"{first} {last}", "email": email,
             "type": user_type, "role_name": {"0": "Owner", "1": "Admin"}.get(role_id, "Member"),
             "role_id": role_id, "timezone": timezone, "verified": 0 if status == "pending" else 1,
             "dept": dept, "language": "fr-FR", "status": status,
             "created_at": iso(as_of if status == "pending" else as_of - timedelta(days=between(rng, 40, 2000))),
             "group_ids": [], "im_group_ids": [], "login_types": [101 if sso_id else 100]}
    if pmi is not None:
        user["pmi"] = pmi
        user["use_pmi"] = False
    if status != "pending":
        user["last_login_time"] = iso(as_of - timedelta(days=between(rng, 0, 200), minutes=between(rng, 0, 900)))
        user["last_client_version"] = pick(rng, ("6.2.5.50123(mac)", "6.3.1.60981(win)", "6.1.10.4321(win)"))
    if sso_id is not None:
        user["employee_unique_id"] = sso_id
    if user_type == 2 and rng.random() < 0.1:
        user["plan_united_type"] = "1"
    return user


def zoom_meeting(rng: random.Random, *, meeting_id: int, host_id: str, host_email: str, schedule: Schedule,
                 traits: MeetingTraits, join_host: str, pmi: int | None, as_of: datetime) -> dict[str, object]:
    """A Zoom meeting as `GET /meetings/{id}` returns it (type 2 single, 3 no fixed time, 8 recurring)."""
    if schedule.kind is MeetingKind.PERSONAL_ROOM:
        assert pmi is not None
        meeting_id = pmi
    meeting_type = 3 if schedule.start is None else (8 if schedule.recurring else 2)
    encrypted = base64.urlsafe_b64encode(rng.randbytes(24)).decode().rstrip("=") if traits.passcode else None
    join_url = f"https://{join_host}/j/{meeting_id}" + (f"?pwd={encrypted}" if encrypted else "")
    body: dict[str, object] = {
        "uuid": base64.b64encode(rng.randbytes(16)).decode("ascii"),
        "id": meeting_id, "host_id": host_id, "host_email": host_email, "assistant_id": "",
        "topic": traits.topic, "type": meeting_type, "status": "waiting",
    }
    if schedule.start is not None:
        body["start_time"] = utc_z(schedule.start)
        body["duration"] = schedule.duration
    body |= {"timezone": schedule.timezone, "agenda": traits.agenda,
             "created_at": iso(as_of - timedelta(days=between(rng, 1, 400))),
             "start_url": f"https://{join_host}/s/{meeting_id}?zak=eyJ0eXAiOiJKV1Qi.sandbox.{rng.getrandbits(32):x}",
             "join_url": join_url, "pre_schedule": False}
    if traits.passcode:
        body |= {"password": traits.passcode, "h323_password": traits.passcode, "encrypted_password": encrypted}
    if schedule.kind is MeetingKind.PERSONAL_ROOM:
        body["pmi"] = str(pmi)
    recurrence = zoom_recurrence(schedule)
    if recurrence is not None:
        body["recurrence"] = recurrence
    settings: dict[str, object] = {
        "host_video": rng.random() < 0.6, "participant_video": rng.random() < 0.4,
        "join_before_host": not traits.waiting_room and rng.random() < 0.5, "jbh_time": pick(rng, (0, 5, 10)),
        "mute_upon_entry": rng.random() < 0.5, "watermark": False,
        "use_pmi": schedule.kind is MeetingKind.PERSONAL_ROOM,
        "approval_type": pick(rng, (0, 1)) if traits.registration else 2,
        "audio": "both" if traits.dial_in else "voip", "auto_recording": pick(rng, ("none", "none", "cloud")),
        "waiting_room": traits.waiting_room, "meeting_authentication": rng.random() < 0.15,
        "alternative_hosts": ";".join(traits.alternative_hosts), "alternative_hosts_email_notification": True,
        "encryption_type": "enhanced_encryption", "private_meeting": False, "email_notification": True,
        "enforce_login": False, "enforce_login_domains": "",
        "meeting_invitees": [{"email": invitee.email} for invitee in traits.invitees],
    }
    if traits.registration and meeting_type == 8:
        settings["registration_type"] = 1
    if traits.dial_in:
        settings["global_dial_in_countries"] = ["FR"]
        settings["global_dial_in_numbers"] = [
            {"country": "FR", "country_name": "France", "city": "Paris", "number": "+33 1 7095 0103",
             "type": "toll"},
            {"country": "FR", "country_name": "France", "number": "+33 8 0094 6583", "type": "tollfree"}]
    body["settings"] = settings
    return body


# ------------------------------------------------------------------------------------------------ Graph

def graph_user(rng: random.Random, *, user_id: str, display: str, given: str | None, surname: str | None,
               mail: str, upn: str, aliases: list[str], employee_id: str | None, department: str | None,
               company: str | None, title: str | None, enabled: bool, guest: bool, immutable_id: str | None,
               skus: list[Sku], disabled_teams: bool, group_id: str | None, as_of: datetime) -> dict[str, object]:
    """A Graph user with every property bascule selects (the sandbox returns the 11 defaults otherwise)."""
    created = as_of - timedelta(days=between(rng, 30, 2500))
    assigned = []
    plans = []
    states = []
    for sku in skus:
        disabled = [TEAMS1_PLAN_ID] if disabled_teams and sku.has_teams else []
        assigned.append({"disabledPlans": disabled, "skuId": sku.sku_id})
        states.append({"skuId": sku.sku_id, "disabledPlans": disabled, "assignedByGroup": group_id,
                       "state": "Active", "error": "None", "lastUpdatedDateTime": iso(created)})
        for plan_name, plan_id in sku.plans:
            plans.append({"assignedDateTime": iso(created), "service": plan_name.split("_")[0],
                          "servicePlanId": plan_id,
                          "capabilityStatus": "Deleted" if plan_id in disabled else "Enabled"})
    user: dict[str, object] = {
        "businessPhones": [] if guest else [f"+33 1 40 15 {between(rng, 10, 99)} {between(rng, 10, 99)}"],
        "displayName": display, "givenName": given, "jobTitle": title, "mail": mail, "mobilePhone": None,
        "officeLocation": None if guest else "Paris", "preferredLanguage": None if guest else "fr-FR",
        "surname": surname, "userPrincipalName": upn, "id": user_id,
        "accountEnabled": enabled, "userType": "Guest" if guest else "Member",
        "externalUserState": "Accepted" if guest else None,
        "mailNickname": upn.split("@")[0].replace("#EXT#", ""),
        "proxyAddresses": [f"SMTP:{mail}"] + [f"smtp:{alias}" for alias in aliases],
        "otherMails": [], "employeeId": employee_id, "employeeType": None, "department": department,
        "companyName": company, "createdDateTime": iso(created), "usageLocation": None if guest else "FR",
        "onPremisesImmutableId": immutable_id, "onPremisesSyncEnabled": True if immutable_id else None,
        "assignedLicenses": assigned, "assignedPlans": plans, "licenseAssignmentStates": states,
        "signInActivity": {"lastSignInDateTime": iso(as_of - timedelta(days=between(rng, 0, 90))),
                           "lastNonInteractiveSignInDateTime": iso(as_of - timedelta(days=between(rng, 0, 30))),
                           "lastSuccessfulSignInDateTime": iso(as_of - timedelta(days=between(rng, 0, 90)))},
    }
    return user


_SEPARATOR_MODERN = ('<div style="width:100%"><span style="white-space:nowrap;color:#5F5F5F;opacity:.36">'
                     + "_" * 80 + "</span></div>")


def teams_join_url(rng: random.Random, *, tenant_id: str, organizer_id: str, short: bool,
                   passcode: str) -> tuple[str, str | None]:
    """(join URL, numeric meeting id of the short form)."""
    if short:
        meeting_number = f"{rng.getrandbits(47) % 10**14:014d}"
        return f"https://teams.microsoft.com/meet/{meeting_number}?p={passcode}", meeting_number
    thread = base64.b64encode(rng.randbytes(36)).decode("ascii").replace("+", "a").replace("/", "b")[:48]
    return ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_" + thread + "%40thread.v2/0?context="
            "%7b%22Tid%22%3a%22" + tenant_id + "%22%2c%22Oid%22%3a%22" + organizer_id + "%22%7d"), None


def teams_body(*, join_url: str, meeting_number: str | None, passcode: str, agenda: str, variant: str,
               conference_id: str | None) -> str:
    """An Outlook HTML body with the Teams block as Outlook writes it (three markups seen in the field)."""
    escaped_agenda = agenda.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    head = ('<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n</head>\r\n'
            f'<body>\r\n<div>{escaped_agenda}</div>\r\n<br>\r\n')
    id_line = (f'<div style="margin-bottom:4px"><span style="font-size:14px;color:#616161">ID de réunion : '
               f'</span><span style="font-size:14px;color:#252424">{meeting_number or conference_id}</span></div>'
               f'<div style="margin-bottom:20px"><span style="font-size:14px;color:#616161">Code secret : </span>'
               f'<span style="font-size:14px;color:#252424">{passcode}</span></div>')
    if variant == "modern":
        block = (f'{_SEPARATOR_MODERN}\r\n<div class="me-email-text" lang="fr-FR" style="color:#252424;'
                 "font-family:'Segoe UI','Helvetica Neue',Helvetica,Arial,sans-serif\">\r\n"
                 '<div style="margin-top:24px;margin-bottom:20px"><span style="font-size:24px;color:#252424">'
                 'Réunion Microsoft Teams</span></div>\r\n<div style="margin-bottom:20px"><div style="margin-top:'
                 '0px;margin-bottom:0px;font-weight:bold"><span style="font-size:14px;color:#252424">Rejoindre : '
                 f'</span><a class="me-email-link" style="font-size:14px;text-decoration:underline;color:#5B5FC7" '
                 f'href="{join_url}" target="_blank" rel="noreferrer noopener">{join_url}</a></div>\r\n{id_line}'
                 '</div>\r\n<div style="margin-bottom:24px;max-width:532px"><a class="me-email-link" '
                 'href="https://aka.ms/JoinTeamsMeeting?omkt=fr-FR">Besoin d\'aide ?</a></div>\r\n</div>\r\n'
                 f'{_SEPARATOR_MODERN}\r\n')
    elif variant == "legacy":
        block = ('<div>________________________________________________________________________________</div>'
                 '\r\n<div><span style="font-size:18pt">Rejoindre la réunion Microsoft Teams</span></div>\r\n'
                 f'<div><a href="{join_url}"><span style="font-size:10.5pt">Cliquez ici pour rejoindre la réunion'
                 '</span></a></div>\r\n<div><a href="https://aka.ms/JoinTeamsMeeting">En savoir plus sur Teams</a>'
                 ' | <a href="https://teams.microsoft.com/meetingOptions/">Options de réunion</a></div>\r\n'
                 '<div>________________________________________________________________________________</div>\r\n')
    else:  # "edited": someone removed the separators by hand; the block can only be found by its URL
        block = f'<p>Lien Teams : <a href="{join_url}">{join_url}</a></p>\r\n'
    return head + block + "</body>\r\n</html>\r\n"


def graph_event(rng: random.Random, *, event_id: str, organizer_name: str, organizer_email: str,
                schedule: Schedule, traits: MeetingTraits, online: bool, join_url: str | None,
                meeting_number: str | None, body_variant: str, as_of: datetime,
                broken_recurrence: bool = False, missing_organizer: bool = False) -> dict[str, object]:
    """An Outlook event as `GET /users/{id}/events` returns it (series master or single instance)."""
    assert schedule.start is not None
    windows_zone = IANA_TO_WINDOWS.get(schedule.timezone, "Romance Standard Time")
    end = schedule.start + timedelta(minutes=schedule.duration)
    conference_id = str(between(rng, 100_000_000, 999_999_999)) if online else None
    recurrence = graph_recurrence(schedule, windows_zone)
    if broken_recurrence and recurrence is not None:
        pattern = recurrence["pattern"]
        assert isinstance(pattern, dict)
        pattern["daysOfWeek"] = []
        pattern["type"] = "weekly"
    if online:
        assert join_url is not None and traits.passcode is not None
        body = teams_body(join_url=join_url, meeting_number=meeting_number, passcode=traits.passcode,
                          agenda=traits.agenda, variant=body_variant, conference_id=conference_id)
        location = {"displayName": "Réunion Microsoft Teams", "locationType": "default",
                    "uniqueId": "Réunion Microsoft Teams", "uniqueIdType": "private"}
    else:
        body = f"<html><body><div>{traits.agenda}</div></body></html>"
        location = {"displayName": pick(rng, ("Salle Molière", "Salle Colbert", "Bureau 3B", "")),
                    "locationType": "default", "uniqueIdType": "unknown"}
    online_meeting: dict[str, object] | None = None
    if online:
        online_meeting = {"joinUrl": join_url, "conferenceId": conference_id}
        if traits.dial_in:
            online_meeting |= {"tollNumber": "+33 1 70 37 97 29", "tollFreeNumbers": [],
                               "quickDial": f"+33170379729,,{conference_id}#"}
    created = as_of - timedelta(days=between(rng, 1, 400))
    organizer = ({"emailAddress": {"name": organizer_name, "address": organizer_email}}
                 if not missing_organizer else {"emailAddress": {"name": organizer_name}})
    return {
        "id": event_id,
        "createdDateTime": iso(created), "lastModifiedDateTime": iso(created + timedelta(days=1)),
        "changeKey": base64.b64encode(rng.randbytes(12)).decode("ascii"),
        "categories": [], "transactionId": None, "originalStartTimeZone": windows_zone,
        "originalEndTimeZone": windows_zone,
        "iCalUId": "040000008200E00074C5B7101A82E00800000000" + rng.randbytes(24).hex().upper(),
        "uid": "040000008200E00074C5B7101A82E00800000000" + rng.randbytes(8).hex().upper(),
        "reminderMinutesBeforeStart": 15, "isReminderOn": True, "hasAttachments": False,
        "subject": traits.topic, "bodyPreview": traits.agenda[:255], "importance": "normal",
        "sensitivity": "normal", "isAllDay": False, "isCancelled": False, "isOrganizer": True,
        "responseRequested": True, "seriesMasterId": None, "showAs": "busy",
        "type": "seriesMaster" if schedule.recurring else "singleInstance",
        "webLink": f"https://outlook.office365.com/owa/?itemid={event_id}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None, "isOnlineMeeting": online,
        "onlineMeetingProvider": "teamsForBusiness" if online else "unknown",
        "allowNewTimeProposals": True, "isDraft": False, "hideAttendees": False,
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "body": {"contentType": "html", "content": body},
        "start": {"dateTime": graph_time(schedule.start), "timeZone": "UTC"},
        "end": {"dateTime": graph_time(end), "timeZone": "UTC"},
        "location": location, "locations": [location] if location.get("displayName") else [],
        "recurrence": recurrence,
        "attendees": [{"type": "required", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                       "emailAddress": {"name": invitee.name, "address": invitee.email}}
                      for invitee in traits.invitees],
        "organizer": organizer,
        "onlineMeeting": online_meeting,
    }


# ------------------------------------------------------------------------------------------------ Webex

def webex_person(rng: random.Random, *, person_id: str, org_id: str, emails: list[str], display: str,
                 first: str | None, last: str | None, licences: list[str], site_urls: list[str],
                 department: str | None, title: str | None, pending: bool, login_enabled: bool,
                 as_boolean: bool, timezone: str, personal_room: str | None, as_of: datetime) -> dict[str, object]:
    """A Webex person as an admin sees it (`GET /people/{id}`), flags as strings or, for some, booleans."""
    created = as_of - timedelta(days=between(rng, 30, 2000))

    def flag(value: bool) -> object:
        return value if as_boolean else ("true" if value else "false")

    person: dict[str, object] = {
        "id": person_id, "emails": emails,
        "phoneNumbers": [{"type": "work", "value": f"+33 1 40 15 {between(rng, 10, 99)} {between(rng, 10, 99)}",
                          "primary": True}],
        "displayName": display, "nickName": first or display, "firstName": first, "lastName": last,
        "orgId": org_id, "roles": [], "licenses": licences, "department": department, "title": title,
        "created": iso(created), "lastModified": iso(created + timedelta(days=between(rng, 0, 30))),
        "timezone": timezone, "siteUrls": site_urls,
        "status": pick(rng, ("active", "inactive", "inactive", "meeting", "OutOfOffice", "unknown")),
        "invitePending": flag(pending), "loginEnabled": flag(login_enabled), "type": "person",
    }
    if not pending:
        person["lastActivity"] = iso(as_of - timedelta(days=between(rng, 0, 120), minutes=between(rng, 0, 600)))
    if personal_room:
        person["sipAddresses"] = [{"type": "personal-room", "value": personal_room, "primary": False}]
    return person


def webex_meeting(rng: random.Random, *, meeting_id: str, meeting_number: str, host_id: str, host_name: str,
                  host_email: str, site: str, login: str, schedule: Schedule, traits: MeetingTraits,
                  rrule_override: str | None, as_of: date) -> dict[str, object]:
    """A Webex meeting series as `GET /meetings/{id}` returns it."""
    start = schedule.start
    if start is None:  # a personal room meeting: a standing weekly slot in the room
        start = datetime(as_of.year, as_of.month, as_of.day, 10, tzinfo=UTC)
    end = start + timedelta(minutes=schedule.duration)
    expired = schedule.kind is MeetingKind.EXPIRED_SERIES
    personal = schedule.kind is MeetingKind.PERSONAL_ROOM
    web_link = (f"https://{site}/meet/{login}" if personal
                else f"https://{site}/{site.split('.')[0]}/j.php?MTID=m{rng.randbytes(16).hex()}")
    recurrence = rrule_override if rrule_override is not None else webex_rrule(schedule)
    body: dict[str, object] = {
        "id": meeting_id, "meetingSeriesId": meeting_id, "meetingNumber": meeting_number,
        "title": traits.topic, "agenda": traits.agenda,
        "password": traits.passcode or f"{between(rng, 10**7, 10**8 - 1)}",
        "phoneAndVideoSystemPassword": str(between(rng, 10**7, 10**8 - 1)),
        "meetingType": "meetingSeries", "state": "expired" if expired else "active",
        "timezone": schedule.timezone,
        "start": start.isoformat(timespec="seconds"), "end": end.isoformat(timespec="seconds"),
    }
    if recurrence is not None:
        body["recurrence"] = recurrence
    body |= {
        "hostUserId": host_id, "hostDisplayName": host_name, "hostEmail": host_email,
        "hostKey": f"{between(rng, 0, 999_999):06d}", "siteUrl": site, "webLink": web_link,
        "sipAddress": f"{login}@{site}" if personal else f"{meeting_number}@{site}",
        "dialInIpAddress": "173.243.2.68", "enabledAutoRecordMeeting": False,
        "allowAnyUserToBeCoHost": False, "enabledJoinBeforeHost": not traits.waiting_room,
        "enableConnectAudioBeforeHost": False, "joinBeforeHostMinutes": 0 if traits.waiting_room else 5,
        "excludePassword": False, "publicMeeting": False, "reminderTime": 10,
        "unlockedMeetingJoinSecurity": "allowJoinWithLobby" if traits.waiting_room else "allowJoin",
        "sessionTypeId": 3,
        "scheduledType": "webinar" if traits.webinar else ("personalRoomMeeting" if personal else "meeting"),
        "enabledWebcastView": False, "enableAutomaticLock": False, "allowFirstUserToBeCoHost": False,
        "allowAuthenticatedDevices": True, "hasRegistration": traits.registration,
        "telephony": {"accessCode": meeting_number,
                      "callInNumbers": ([{"label": "France toll", "callInNumber": "+33-1-7091-9994",
                                          "tollType": "toll"}] if traits.dial_in else []),
                      "links": [{"rel": "globalCallinNumbers", "method": "GET",
                                 "href": f"/v1/meetings/{meeting_id}/globalCallinNumbers"}]},
        "enabledBreakoutSessions": False,
    }
    if traits.registration:
        body["registration"] = {"autoAcceptRequest": True, "requireFirstName": True, "requireLastName": True,
                                "requireEmail": True}
    return body
