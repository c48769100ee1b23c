"""What an ICS update must contain: table-driven over the series a ministry has, and the rollback variant."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.invitations import (
    DEFAULT_DURATION,
    InvitationPurpose,
    InvitationUpdate,
    NotInvitable,
    NotInvitableReason,
    build_invitation_update,
    build_rollback_update,
    invitation_from_payload,
    invitation_payload,
    invitation_uid,
)
from core.records import Meeting, MeetingKind, Platform, Recurrence

VISIO = "https://visio.numerique.gouv.fr/abc-defg-hij"
ORGANISER = "claire.martin@interieur.gouv.fr"


def meeting(*, platform: Platform = Platform.ZOOM, external_id: str = "84120036571", kind: MeetingKind,
            start: datetime | None, timezone: str = "Europe/Paris", rrule: str | None = None,
            duration: int | None = 60, invitees: tuple[str, ...] = ("paul.durand@interieur.gouv.fr",),
            host_email: str = ORGANISER, join_url: str = "https://zoom.us/j/84120036571") -> Meeting:
    return Meeting(platform=platform, external_id=external_id, host_account_id="host-1", host_email=host_email,
                   topic="Point hebdo DSI", kind=kind, timezone=timezone, join_url=join_url,
                   link_key=f"{platform.value}:{external_id}", start=start, duration_minutes=duration,
                   recurrence=Recurrence(rrule, timezone) if rrule else None, invitees=invitees)


# (name, meeting, expected local start (wall clock in the zone), zone, rrule, duration)
CASES = [
    ("weekly Zoom, Paris winter",
     meeting(kind=MeetingKind.WEEKLY, start=datetime(2026, 1, 5, 9, tzinfo=UTC),
             rrule="FREQ=WEEKLY;INTERVAL=1;BYDAY=MO"),
     datetime(2026, 1, 5, 10), "Europe/Paris", "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO", timedelta(hours=1)),
    ("weekly Zoom, Paris summer start",
     meeting(kind=MeetingKind.WEEKLY, start=datetime(2026, 6, 2, 12, 30, tzinfo=UTC),
             rrule="FREQ=WEEKLY;INTERVAL=1;BYDAY=TU;UNTIL=20271231T225959Z", duration=45),
     datetime(2026, 6, 2, 14, 30), "Europe/Paris", "FREQ=WEEKLY;INTERVAL=1;BYDAY=TU;UNTIL=20271231T225959Z",
     timedelta(minutes=45)),
    ("monthly second Tuesday, Webex",
     meeting(platform=Platform.WEBEX, external_id="5f1e0c2a9b8d4e7f", kind=MeetingKind.MONTHLY_NTH_WEEKDAY,
             start=datetime(2026, 2, 10, 13, tzinfo=UTC), rrule="FREQ=MONTHLY;INTERVAL=1;BYDAY=TU;BYSETPOS=2",
             join_url="https://ministere.webex.com/meet/j.php?MTID=m0123"),
     datetime(2026, 2, 10, 14), "Europe/Paris", "FREQ=MONTHLY;INTERVAL=1;BYDAY=TU;BYSETPOS=2", timedelta(hours=1)),
    ("monthly last Friday with a count",
     meeting(kind=MeetingKind.MONTHLY_NTH_WEEKDAY, start=datetime(2026, 1, 30, 15, tzinfo=UTC),
             rrule="FREQ=MONTHLY;INTERVAL=1;BYDAY=-1FR;COUNT=12", duration=90),
     datetime(2026, 1, 30, 16), "Europe/Paris", "FREQ=MONTHLY;INTERVAL=1;BYDAY=-1FR;COUNT=12",
     timedelta(minutes=90)),
    ("daily stand-up on working days",
     meeting(kind=MeetingKind.DAILY, start=datetime(2026, 3, 2, 8, 30, tzinfo=UTC),
             rrule="FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR", duration=15),
     datetime(2026, 3, 2, 9, 30), "Europe/Paris", "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR",
     timedelta(minutes=15)),
    ("daily every day",
     meeting(kind=MeetingKind.DAILY, start=datetime(2026, 3, 2, 7, tzinfo=UTC), rrule="FREQ=DAILY;INTERVAL=1",
             duration=10),
     datetime(2026, 3, 2, 8), "Europe/Paris", "FREQ=DAILY;INTERVAL=1", timedelta(minutes=10)),
    ("one-off, no RRULE",
     meeting(kind=MeetingKind.ONE_OFF, start=datetime(2026, 12, 3, 13, tzinfo=UTC), duration=30),
     datetime(2026, 12, 3, 14), "Europe/Paris", None, timedelta(minutes=30)),
    ("La Réunion (UTC+4, no DST)",
     meeting(kind=MeetingKind.WEEKLY, start=datetime(2026, 1, 8, 5, tzinfo=UTC), timezone="Indian/Reunion",
             rrule="FREQ=WEEKLY;INTERVAL=1;BYDAY=TH"),
     datetime(2026, 1, 8, 9), "Indian/Reunion", "FREQ=WEEKLY;INTERVAL=1;BYDAY=TH", timedelta(hours=1)),
    ("Guyane (UTC-3)",
     meeting(kind=MeetingKind.BIWEEKLY, start=datetime(2026, 1, 7, 12, tzinfo=UTC), timezone="America/Cayenne",
             rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=WE"),
     datetime(2026, 1, 7, 9), "America/Cayenne", "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE", timedelta(hours=1)),
    ("Nouvelle-Calédonie (UTC+11), the local day is the next UTC day",
     meeting(kind=MeetingKind.WEEKLY, start=datetime(2026, 1, 4, 22, tzinfo=UTC), timezone="Pacific/Noumea",
             rrule="FREQ=WEEKLY;INTERVAL=1;BYDAY=MO"),
     datetime(2026, 1, 5, 9), "Pacific/Noumea", "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO", timedelta(hours=1)),
    ("Polynésie (UTC-10), one-off",
     meeting(kind=MeetingKind.ONE_OFF, start=datetime(2026, 12, 1, 18, tzinfo=UTC), timezone="Pacific/Tahiti"),
     datetime(2026, 12, 1, 8), "Pacific/Tahiti", None, timedelta(hours=1)),
    ("Saint-Pierre-et-Miquelon (UTC-3 with DST)",
     meeting(kind=MeetingKind.MONTHLY_DAY, start=datetime(2026, 7, 15, 12, tzinfo=UTC), timezone="America/Miquelon",
             rrule="FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=15"),
     datetime(2026, 7, 15, 10), "America/Miquelon", "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=15", timedelta(hours=1)),
]


@pytest.mark.parametrize(("source", "local_start", "zone", "rrule", "duration"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_update_carries_the_series_unchanged_with_the_visio_link(source: Meeting, local_start: datetime, zone: str,
                                                                 rrule: str | None, duration: timedelta) -> None:
    update = build_invitation_update(source, visio_url=VISIO, previous_sequence=0, idempotency_key="k1")

    assert isinstance(update, InvitationUpdate)
    assert update.purpose is InvitationPurpose.CUTOVER
    assert update.uid == f"{source.platform.value}-{source.external_id}@bascule"
    assert update.sequence == 1
    assert update.summary == source.topic
    assert update.timezone == zone
    assert update.start.tzinfo == ZoneInfo(zone)
    assert update.start.replace(tzinfo=None) == local_start
    assert update.start == source.start                      # the same instant, only expressed in its zone
    assert update.rrule == rrule
    assert update.duration == duration
    assert update.end == update.start + duration
    assert update.organiser == ORGANISER
    assert update.attendees == ("paul.durand@interieur.gouv.fr",)
    assert update.link == VISIO
    assert update.replaced_link == source.join_url
    assert VISIO in update.description
    assert source.join_url not in update.description          # the old link is not offered any more
    assert update.idempotency_key == "k1"


@pytest.mark.parametrize(("previous", "expected"), [(0, 1), (1, 2), (7, 8)])
def test_sequence_is_the_previous_one_plus_one(previous: int, expected: int) -> None:
    source = CASES[0][1]
    update = build_invitation_update(source, visio_url=VISIO, previous_sequence=previous, idempotency_key="k")
    assert isinstance(update, InvitationUpdate)
    assert update.sequence == expected


def test_a_negative_previous_sequence_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="previous_sequence"):
        build_invitation_update(CASES[0][1], visio_url=VISIO, previous_sequence=-1, idempotency_key="k")


def test_a_known_original_uid_is_kept() -> None:
    update = build_invitation_update(CASES[0][1], visio_url=VISIO, previous_sequence=3, idempotency_key="k",
                                     uid="040000008200E00074C5B7101A82E008@outlook")
    assert isinstance(update, InvitationUpdate)
    assert update.uid == "040000008200E00074C5B7101A82E008@outlook"
    assert update.sequence == 4


def test_derived_uid_is_stable_and_names_the_platform_meeting() -> None:
    assert invitation_uid(Platform.ZOOM, "84120036571") == "zoom-84120036571@bascule"
    assert invitation_uid(Platform.WEBEX, "5f1e") == "webex-5f1e@bascule"
    first = build_invitation_update(CASES[0][1], visio_url=VISIO, previous_sequence=0, idempotency_key="a")
    again = build_invitation_update(CASES[0][1], visio_url=VISIO, previous_sequence=1, idempotency_key="b")
    assert isinstance(first, InvitationUpdate) and isinstance(again, InvitationUpdate)
    assert first.uid == again.uid


def test_attendees_are_deduplicated_without_the_organiser() -> None:
    source = replace(CASES[0][1], invitees=("Paul.Durand@interieur.gouv.fr", "paul.durand@interieur.gouv.fr",
                                            ORGANISER.upper(), "  ", "ext@partenaire.fr"))
    update = build_invitation_update(source, visio_url=VISIO, previous_sequence=0, idempotency_key="k")
    assert isinstance(update, InvitationUpdate)
    assert update.attendees == ("Paul.Durand@interieur.gouv.fr", "ext@partenaire.fr")


def test_missing_duration_and_unusable_zone_have_defaults() -> None:
    source = meeting(kind=MeetingKind.ONE_OFF, start=datetime(2026, 12, 3, 13, tzinfo=UTC), timezone="Mars/Olympus",
                     duration=None)
    update = build_invitation_update(source, visio_url=VISIO, previous_sequence=0, idempotency_key="k")
    assert isinstance(update, InvitationUpdate)
    assert update.duration == DEFAULT_DURATION
    assert update.timezone == "UTC"
    assert update.start == datetime(2026, 12, 3, 13, tzinfo=UTC)


REFUSALS = [
    ("Teams series are rewritten through Graph", meeting(platform=Platform.TEAMS, kind=MeetingKind.WEEKLY,
     start=datetime(2026, 1, 5, 9, tzinfo=UTC), rrule="FREQ=WEEKLY;INTERVAL=1;BYDAY=MO"),
     NotInvitableReason.TEAMS_SERIES),
    ("no fixed time", meeting(kind=MeetingKind.NO_FIXED_TIME, start=None), NotInvitableReason.NOT_SCHEDULED),
    ("personal room", meeting(kind=MeetingKind.PERSONAL_ROOM, start=None), NotInvitableReason.NOT_SCHEDULED),
    ("expired series", meeting(kind=MeetingKind.EXPIRED_SERIES, start=datetime(2024, 1, 1, 9, tzinfo=UTC),
                               rrule="FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;COUNT=3"), NotInvitableReason.EXPIRED_SERIES),
    ("no start", meeting(kind=MeetingKind.ONE_OFF, start=None), NotInvitableReason.NO_START),
    ("no organiser", meeting(kind=MeetingKind.ONE_OFF, start=datetime(2026, 12, 3, 13, tzinfo=UTC), host_email=" "),
     NotInvitableReason.NO_ORGANISER),
]


@pytest.mark.parametrize(("source", "reason"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_meetings_without_an_ics_update_say_why(source: Meeting, reason: NotInvitableReason) -> None:
    outcome = build_invitation_update(source, visio_url=VISIO, previous_sequence=0, idempotency_key="k")
    assert outcome == NotInvitable(source.external_id, reason)


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_rollback_restores_the_old_link_with_sequence_plus_one(case: tuple[object, ...]) -> None:
    source = case[1]
    assert isinstance(source, Meeting)
    sent = build_invitation_update(source, visio_url=VISIO, previous_sequence=2, idempotency_key="cutover")
    assert isinstance(sent, InvitationUpdate)

    rollback = build_rollback_update(sent, idempotency_key="rollback")

    assert rollback.purpose is InvitationPurpose.ROLLBACK
    assert rollback.uid == sent.uid
    assert rollback.sequence == sent.sequence + 1 == 4
    assert rollback.link == source.join_url
    assert rollback.replaced_link == VISIO
    assert source.join_url in rollback.description and VISIO not in rollback.description
    assert (rollback.start, rollback.timezone, rollback.rrule, rollback.duration) == (
        sent.start, sent.timezone, sent.rrule, sent.duration)
    assert (rollback.organiser, rollback.attendees, rollback.summary) == (sent.organiser, sent.attendees, sent.summary)
    assert rollback.idempotency_key == "rollback"


def test_rollback_after_later_updates_follows_the_latest_sequence() -> None:
    sent = build_invitation_update(CASES[0][1], visio_url=VISIO, previous_sequence=0, idempotency_key="c")
    assert isinstance(sent, InvitationUpdate)
    assert build_rollback_update(sent, idempotency_key="r", previous_sequence=5).sequence == 6
    with pytest.raises(ValueError, match="older"):
        build_rollback_update(sent, idempotency_key="r", previous_sequence=0)
    with pytest.raises(ValueError, match="cutover"):
        build_rollback_update(build_rollback_update(sent, idempotency_key="r"), idempotency_key="rr")


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_payload_round_trips(case: tuple[object, ...]) -> None:
    source = case[1]
    assert isinstance(source, Meeting)
    update = build_invitation_update(source, visio_url=VISIO, previous_sequence=0, idempotency_key="k",
                                     organiser_name="Claire Martin")
    assert isinstance(update, InvitationUpdate)
    restored = invitation_from_payload(invitation_payload(update))
    assert restored == update
    assert restored.start.tzinfo == ZoneInfo(update.timezone)


def test_a_payload_that_does_not_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="not an invitation payload"):
        invitation_from_payload({"uid": "x"})


def test_a_series_keeps_its_deleted_and_moved_occurrences_in_its_zone() -> None:
    from core.records import OccurrenceChange

    start = datetime(2026, 12, 7, 9, tzinfo=UTC)  # 10:00 in Paris
    week = timedelta(days=7)
    source = replace(meeting(kind=MeetingKind.WEEKLY, start=start, rrule="FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;COUNT=10"),
                     exclusions=(start + week,),
                     exceptions=(OccurrenceChange(start + 2 * week, start + 2 * week + timedelta(hours=2)),
                                 OccurrenceChange(start + 3 * week, start + 3 * week, 15)))
    update = build_invitation_update(source, visio_url=VISIO, previous_sequence=0, idempotency_key="k")
    assert isinstance(update, InvitationUpdate)
    paris = ZoneInfo("Europe/Paris")
    assert [moment.replace(tzinfo=None) for moment in update.exclusions] == [datetime(2026, 12, 14, 10)]
    assert all(moment.tzinfo == paris for moment in update.exclusions)
    assert [(c.original.replace(tzinfo=None), c.start.replace(tzinfo=None), c.duration_minutes)
            for c in update.exceptions] == [(datetime(2026, 12, 21, 10), datetime(2026, 12, 21, 12), None),
                                            (datetime(2026, 12, 28, 10), datetime(2026, 12, 28, 10), 15)]
    assert invitation_from_payload(invitation_payload(update)) == update
    rollback = build_rollback_update(update, idempotency_key="r")
    assert (rollback.exclusions, rollback.exceptions) == (update.exclusions, update.exceptions)
    one_off = replace(source, kind=MeetingKind.ONE_OFF, recurrence=None)
    single = build_invitation_update(one_off, visio_url=VISIO, previous_sequence=0, idempotency_key="k")
    assert isinstance(single, InvitationUpdate) and single.exclusions == () and single.exceptions == ()
