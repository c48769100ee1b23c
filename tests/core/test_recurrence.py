"""Recurrence rules from Zoom, Graph and Webex: hand-computed calendars, dateutil as oracle, the generator's truth."""

from __future__ import annotations

import calendar
import json
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from core.links import parse_join_url
from core.records import MeetingKind, Recurrence
from core.recurrence import (
    Unparseable,
    classify_meeting,
    last_occurrence,
    next_occurrence,
    recurrence_from_graph,
    recurrence_from_webex,
    recurrence_from_zoom,
)
from core.timezones import IANA_TO_WINDOWS
from sandbox.generator.ministry import GeneratorOptions, generate_ministry
from sandbox.generator.schedules import draw_schedule, graph_recurrence, webex_rrule, zoom_recurrence

PARIS = ZoneInfo("Europe/Paris")
AS_OF = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)


def paris(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def nth_weekday(year: int, month: int, n: int, weekday: int) -> date:
    """The n-th (or, for -1, last) `weekday` (calendar.MONDAY…) of a month, from the calendar module."""
    days = [week[weekday] for week in calendar.monthcalendar(year, month) if week[weekday]]
    return date(year, month, days[n - 1] if n > 0 else days[n])


def months_from(year: int, month: int, count: int) -> Iterator[tuple[int, int]]:
    for offset in range(count):
        yield year + (month - 1 + offset) // 12, (month - 1 + offset) % 12 + 1


def expand(recurrence: Recurrence, start: datetime, limit: int = 60) -> list[datetime]:
    """Occurrences by stepping next_occurrence, the public API (not the module's internals)."""
    found: list[datetime] = []
    moment = start - timedelta(seconds=1)
    while len(found) < limit:
        following = next_occurrence(recurrence, start, after=moment)
        if following is None:
            break
        found.append(following)
        moment = following
    return found


def parsed(result: Recurrence | Unparseable) -> Recurrence:
    assert isinstance(result, Recurrence), result
    return result


# ------------------------------------------------------------------------------------------------ Zoom

ZOOM_START = datetime(2026, 9, 7, 8, tzinfo=UTC)  # Monday 10:00 in Paris (CEST)

ZOOM_CASES: list[tuple[str, dict[str, object], datetime, list[datetime]]] = [
    ("weekly Monday and Wednesday, 2 = Monday",
     {"type": 2, "repeat_interval": 1, "weekly_days": "2,4", "end_times": 4}, ZOOM_START,
     [paris(2026, 9, 7), paris(2026, 9, 9), paris(2026, 9, 14), paris(2026, 9, 16)]),
    ("weekly, 1 = Sunday and 7 = Saturday",
     {"type": 2, "repeat_interval": 1, "weekly_days": "7,1", "end_times": 4}, datetime(2026, 9, 5, 8, tzinfo=UTC),
     [paris(2026, 9, 5), paris(2026, 9, 6), paris(2026, 9, 12), paris(2026, 9, 13)]),
    ("every two weeks on Tuesday",
     {"type": 2, "repeat_interval": 2, "weekly_days": "3", "end_times": 3}, datetime(2026, 9, 8, 8, tzinfo=UTC),
     [paris(2026, 9, 8), paris(2026, 9, 22), paris(2026, 10, 6)]),
    ("daily every other day",
     {"type": 1, "repeat_interval": 2, "end_times": 3}, ZOOM_START,
     [paris(2026, 9, 7), paris(2026, 9, 9), paris(2026, 9, 11)]),
    ("monthly on the 15th until an instant in winter time",
     {"type": 3, "repeat_interval": 1, "monthly_day": 15, "end_date_time": "2026-11-15T08:00:00Z"},
     datetime(2026, 9, 15, 7, tzinfo=UTC),
     [paris(2026, 9, 15, 9), paris(2026, 10, 15, 9), paris(2026, 11, 15, 9)]),
    ("monthly on the last Friday (week -1, day 6)",
     {"type": 3, "repeat_interval": 1, "monthly_week": -1, "monthly_week_day": 6, "end_times": 3},
     datetime(2026, 9, 25, 8, tzinfo=UTC),
     [datetime.combine(nth_weekday(y, m, -1, calendar.FRIDAY), time(10), PARIS)
      for y, m in months_from(2026, 9, 3)]),
    ("monthly on the second Tuesday, every three months",
     {"type": 3, "repeat_interval": 3, "monthly_week": 2, "monthly_week_day": 3, "end_times": 3},
     datetime.combine(nth_weekday(2026, 9, 2, calendar.TUESDAY), time(10), PARIS),
     [datetime.combine(nth_weekday(y, m, 2, calendar.TUESDAY), time(10), PARIS)
      for y, m in ((2026, 9), (2026, 12), (2027, 3))]),
    ("both monthly forms filled: read by week",
     {"type": 3, "repeat_interval": 1, "monthly_day": 1, "monthly_week": 1, "monthly_week_day": 2, "end_times": 2},
     datetime.combine(nth_weekday(2026, 10, 1, calendar.MONDAY), time(10), PARIS),
     [datetime.combine(nth_weekday(y, m, 1, calendar.MONDAY), time(10), PARIS) for y, m in months_from(2026, 10, 2)]),
    ("both ends given (end_times defaults to 1): end_date_time wins",
     {"type": 1, "repeat_interval": 1, "end_times": 1, "end_date_time": "2026-09-09T08:00:00Z"}, ZOOM_START,
     [paris(2026, 9, 7), paris(2026, 9, 8), paris(2026, 9, 9)]),
    ("values as strings",
     {"type": "2", "repeat_interval": "1", "weekly_days": "6", "end_times": "2"}, datetime(2026, 9, 11, 8, tzinfo=UTC),
     [paris(2026, 9, 11), paris(2026, 9, 18)]),
]


@pytest.mark.parametrize(("label", "payload", "start", "expected"), ZOOM_CASES, ids=[c[0] for c in ZOOM_CASES])
def test_zoom_recurrence_expands_to_the_hand_computed_calendar(label: str, payload: dict[str, object],
                                                               start: datetime, expected: list[datetime]) -> None:
    recurrence = parsed(recurrence_from_zoom(payload, start=start, timezone="Europe/Paris"))
    assert recurrence.timezone == "Europe/Paris"
    assert expand(recurrence, start) == expected
    assert last_occurrence(recurrence, start) == expected[-1]


@pytest.mark.parametrize(("payload", "text"), [
    ({"type": 2, "repeat_interval": 1, "weekly_days": "4,2", "end_times": 20},
     "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE;COUNT=20"),
    ({"type": 1, "repeat_interval": 3, "end_date_time": "2026-12-18T09:00:00Z"},
     "FREQ=DAILY;INTERVAL=3;UNTIL=20261218T090000Z"),
    ({"type": 3, "repeat_interval": 1, "monthly_week": -1, "monthly_week_day": 6, "end_times": 5},
     "FREQ=MONTHLY;INTERVAL=1;BYDAY=-1FR;COUNT=5"),
    ({"type": 3, "repeat_interval": 2, "monthly_day": 7},
     "FREQ=MONTHLY;INTERVAL=2;BYMONTHDAY=7"),
])
def test_zoom_canonical_text(payload: dict[str, object], text: str) -> None:
    assert parsed(recurrence_from_zoom(payload, start=ZOOM_START, timezone="Europe/Paris")).rrule == text


@pytest.mark.parametrize(("payload", "timezone", "reason"), [
    ({"type": 4, "repeat_interval": 1}, "Europe/Paris", "type"),
    ({"repeat_interval": 1}, "Europe/Paris", "type"),
    ({"type": 2, "repeat_interval": 1}, "Europe/Paris", "weekly_days"),
    ({"type": 2, "repeat_interval": 1, "weekly_days": ""}, "Europe/Paris", "weekly_days"),
    ({"type": 2, "repeat_interval": 1, "weekly_days": "0"}, "Europe/Paris", "weekly_days"),
    ({"type": 2, "repeat_interval": 1, "weekly_days": "2,8"}, "Europe/Paris", "weekly_days"),
    ({"type": 2, "repeat_interval": 1, "weekly_days": "Mon"}, "Europe/Paris", "weekly_days"),
    ({"type": 3, "repeat_interval": 1}, "Europe/Paris", "monthly_day"),
    ({"type": 3, "repeat_interval": 1, "monthly_day": 32}, "Europe/Paris", "monthly_day"),
    ({"type": 3, "repeat_interval": 1, "monthly_week": 5, "monthly_week_day": 2}, "Europe/Paris", "monthly_week"),
    ({"type": 1, "repeat_interval": 0}, "Europe/Paris", "repeat_interval"),
    ({"type": 1, "repeat_interval": True}, "Europe/Paris", "repeat_interval"),
    ({"type": 1, "repeat_interval": 1, "end_times": 0}, "Europe/Paris", "end_times"),
    ({"type": 1, "repeat_interval": 1, "end_date_time": "next Friday"}, "Europe/Paris", "end_date_time"),
    ({"type": 1, "repeat_interval": 1, "end_date_time": "2020-01-01T00:00:00Z"}, "Europe/Paris", "no occurrence"),
    ({"type": 1, "repeat_interval": 1}, "Mars/Olympus_Mons", "time zone"),
    ({"type": 1, "repeat_interval": 1}, "", "time zone"),
])
def test_zoom_unparseable_says_why(payload: dict[str, object], timezone: str, reason: str) -> None:
    result = recurrence_from_zoom(payload, start=ZOOM_START, timezone=timezone)
    assert isinstance(result, Unparseable)
    assert reason in result.reason


# ------------------------------------------------------------------------------------------------ DST

def test_expansion_keeps_local_time_across_daylight_saving_changes() -> None:
    start = datetime(2026, 10, 19, 8, tzinfo=UTC)  # Monday 10:00 CEST; clocks go back on Sunday 25 October
    recurrence = parsed(recurrence_from_zoom({"type": 2, "repeat_interval": 1, "weekly_days": "2"},
                                             start=start, timezone="Europe/Paris"))
    after_autumn = next_occurrence(recurrence, start, after=datetime(2026, 10, 20, tzinfo=UTC))
    assert after_autumn == datetime(2026, 10, 26, 9, tzinfo=UTC)  # 10:00 CET, not 08:00 UTC
    after_spring = next_occurrence(recurrence, start, after=datetime(2027, 3, 23, tzinfo=UTC))
    assert after_spring == datetime(2027, 3, 29, 8, tzinfo=UTC)  # back to 10:00 CEST
    assert last_occurrence(recurrence, start) is None  # no end given


def test_next_occurrence_is_strictly_after_and_none_once_over() -> None:
    recurrence = Recurrence("FREQ=DAILY;INTERVAL=1;COUNT=3", "Europe/Paris")
    start = paris(2026, 9, 7)
    assert next_occurrence(recurrence, start, after=paris(2026, 9, 7)) == paris(2026, 9, 8)
    assert next_occurrence(recurrence, start, after=paris(2026, 9, 7) - timedelta(seconds=1)) == paris(2026, 9, 7)
    assert next_occurrence(recurrence, start, after=paris(2026, 9, 9)) is None


def test_naive_datetimes_are_refused() -> None:
    recurrence = Recurrence("FREQ=DAILY;INTERVAL=1", "Europe/Paris")
    with pytest.raises(ValueError, match="aware"):
        next_occurrence(recurrence, datetime(2026, 9, 7, 10), after=NOW)
    with pytest.raises(ValueError, match="aware"):
        recurrence_from_webex("FREQ=DAILY", start=datetime(2026, 9, 7, 10), timezone="Europe/Paris")


# ------------------------------------------------------------------------------------------------ Graph

def graph(pattern: Mapping[str, object], span: Mapping[str, object], *,
          zone: str = "Romance Standard Time") -> dict[str, object]:
    """A patternedRecurrence with unused members filled the way the service fills them."""
    full_pattern = {"type": "daily", "interval": 1, "month": 0, "dayOfMonth": 0, "daysOfWeek": [],
                    "firstDayOfWeek": "sunday", "index": "first"} | dict(pattern)
    full_span = {"type": "noEnd", "startDate": "2026-09-07", "endDate": "0001-01-01", "numberOfOccurrences": 0,
                 "recurrenceTimeZone": zone} | dict(span)
    return {"pattern": full_pattern, "range": full_span}


GRAPH_CASES: list[tuple[str, dict[str, object], datetime, list[datetime]]] = [
    ("contract example: weekly Monday until 2026-12-21 inclusive",
     graph({"type": "weekly", "daysOfWeek": ["monday"]}, {"type": "endDate", "endDate": "2026-12-21"}),
     datetime(2026, 9, 7, 8, tzinfo=UTC),
     [paris(2026, 9, 7) + timedelta(weeks=n) for n in range(16)]),
    ("every two weeks, Sunday and Monday, weeks starting on Sunday",
     graph({"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "sunday"], "firstDayOfWeek": "sunday"},
           {"type": "numbered", "numberOfOccurrences": 4}),
     datetime(2026, 9, 6, 8, tzinfo=UTC),
     [paris(2026, 9, 6), paris(2026, 9, 7), paris(2026, 9, 20), paris(2026, 9, 21)]),
    ("relative monthly, last Friday",
     graph({"type": "relativeMonthly", "daysOfWeek": ["friday"], "index": "last"},
           {"type": "numbered", "numberOfOccurrences": 4}),
     datetime.combine(nth_weekday(2026, 9, -1, calendar.FRIDAY), time(10), PARIS),
     [datetime.combine(nth_weekday(y, m, -1, calendar.FRIDAY), time(10), PARIS) for y, m in months_from(2026, 9, 4)]),
    ("relative monthly, first weekday of the month (several daysOfWeek)",
     graph({"type": "relativeMonthly", "index": "first",
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"]},
           {"type": "numbered", "numberOfOccurrences": 6}),
     paris(2026, 9, 1),
     [datetime.combine(min(nth_weekday(y, m, 1, wd) for wd in range(5)), time(10), PARIS)
      for y, m in months_from(2026, 9, 6)]),
    ("absolute monthly on the 31st falls on the last day of shorter months (Exchange rule)",
     graph({"type": "absoluteMonthly", "dayOfMonth": 31}, {"type": "numbered", "numberOfOccurrences": 5}),
     paris(2027, 1, 31),
     [datetime.combine(date(y, m, calendar.monthrange(y, m)[1]), time(10), PARIS) for y, m in months_from(2027, 1, 5)]),
    ("absolute yearly, 15 March",
     graph({"type": "absoluteYearly", "month": 3, "dayOfMonth": 15}, {"type": "numbered", "numberOfOccurrences": 3}),
     paris(2027, 3, 15),
     [paris(2027, 3, 15), paris(2028, 3, 15), paris(2029, 3, 15)]),
    ("relative yearly, fourth Thursday of November",
     graph({"type": "relativeYearly", "month": 11, "index": "fourth", "daysOfWeek": ["thursday"]},
           {"type": "numbered", "numberOfOccurrences": 3}),
     datetime.combine(nth_weekday(2026, 11, 4, calendar.THURSDAY), time(10), PARIS),
     [datetime.combine(nth_weekday(y, 11, 4, calendar.THURSDAY), time(10), PARIS) for y in (2026, 2027, 2028)]),
    ("daily ignores the filled daysOfWeek and dayOfMonth",
     graph({"type": "daily", "interval": 3, "dayOfMonth": 19, "daysOfWeek": ["friday"]},
           {"type": "endDate", "endDate": "2026-09-13"}),
     paris(2026, 9, 7),
     [paris(2026, 9, 7), paris(2026, 9, 10), paris(2026, 9, 13)]),
]


@pytest.mark.parametrize(("label", "payload", "start", "expected"), GRAPH_CASES, ids=[c[0] for c in GRAPH_CASES])
def test_graph_recurrence_expands_to_the_hand_computed_calendar(label: str, payload: dict[str, object],
                                                                start: datetime, expected: list[datetime]) -> None:
    recurrence = parsed(recurrence_from_graph(payload, start=start.astimezone(UTC)))
    assert recurrence.timezone == "Europe/Paris"
    assert expand(recurrence, start) == expected
    assert last_occurrence(recurrence, start) == expected[-1]


def test_graph_end_date_is_inclusive_in_the_series_zone() -> None:
    # Nouméa is UTC+11: a 08:00 meeting on the end date is still the previous day in UTC.
    start = datetime(2026, 9, 7, 8, tzinfo=ZoneInfo("Pacific/Noumea"))
    payload = graph({"type": "daily"}, {"type": "endDate", "endDate": "2026-09-09"},
                    zone="Central Pacific Standard Time")
    recurrence = parsed(recurrence_from_graph(payload, start=start.astimezone(UTC)))
    assert last_occurrence(recurrence, start) == start + timedelta(days=2)


def test_graph_accepts_an_iana_zone_and_maps_windows_names() -> None:
    start = datetime(2026, 9, 7, 6, tzinfo=UTC)
    mapped = parsed(recurrence_from_graph(graph({"type": "daily"}, {}, zone="Mauritius Standard Time"), start=start))
    assert mapped.timezone == "Indian/Mauritius"
    iana = parsed(recurrence_from_graph(graph({"type": "daily"}, {}, zone="Indian/Reunion"), start=start))
    assert iana.timezone == "Indian/Reunion"


def test_graph_no_end_has_no_last_occurrence() -> None:
    start = datetime(2026, 9, 7, 8, tzinfo=UTC)
    recurrence = parsed(recurrence_from_graph(graph({"type": "weekly", "daysOfWeek": ["monday"]}, {}), start=start))
    assert recurrence.rrule == "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO"
    assert last_occurrence(recurrence, start) is None


@pytest.mark.parametrize(("payload", "reason"), [
    (graph({"type": "weekly", "daysOfWeek": []}, {}), "without daysOfWeek"),  # the generator's broken series
    (graph({"type": "relativeMonthly", "daysOfWeek": []}, {}), "without daysOfWeek"),
    (graph({"type": "weekly", "daysOfWeek": ["mondayy"]}, {}), "day name"),
    (graph({"type": "hourly"}, {}), "not supported"),
    (graph({"type": "daily", "interval": 0}, {}), "interval"),
    (graph({"type": "absoluteMonthly", "dayOfMonth": 0}, {}), "dayOfMonth"),
    (graph({"type": "absoluteYearly", "dayOfMonth": 3, "month": 0}, {}), "month"),
    (graph({"type": "relativeMonthly", "daysOfWeek": ["friday"], "index": "fifth"}, {}), "index"),
    (graph({"type": "daily"}, {"type": "endDate"}), "endDate"),
    (graph({"type": "daily"}, {"type": "endDate", "endDate": "2026-13-01"}), "endDate"),
    (graph({"type": "daily"}, {"type": "numbered", "numberOfOccurrences": 0}), "numberOfOccurrences"),
    (graph({"type": "daily"}, {"type": "forever"}), "range type"),
    (graph({"type": "daily"}, {"type": "endDate", "endDate": "2026-01-01"}), "no occurrence"),
    (graph({"type": "daily"}, {}, zone="Tokyo Standard Time"), "'Tokyo Standard Time' is not in"),
    (graph({"type": "daily"}, {}, zone=""), "recurrenceTimeZone"),
    ({"pattern": {"type": "daily", "interval": 1}}, "without pattern or range"),
])
def test_graph_unparseable_says_why(payload: dict[str, object], reason: str) -> None:
    result = recurrence_from_graph(payload, start=datetime(2026, 9, 7, 8, tzinfo=UTC))
    assert isinstance(result, Unparseable)
    assert reason in result.reason


# ------------------------------------------------------------------------------------------------ Webex

WEBEX_START = paris(2026, 9, 7)  # a Monday


@pytest.mark.parametrize(("rule", "text"), [
    ("FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE;UNTIL=20261218T235959Z",
     "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE;UNTIL=20261218T235959Z"),
    ("FREQ=DAILY;COUNT=10;INTERVAL=1", "FREQ=DAILY;INTERVAL=1;COUNT=10"),
    ("FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=10,11,12", "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=10"),
    ("FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=1;UNTIL=20270210T000000Z",
     "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=1;UNTIL=20270210T000000Z"),
    ("FREQ=MONTHLY;BYDAY=2TU,4TU", "FREQ=MONTHLY;INTERVAL=1;BYDAY=2TU"),
    ("FREQ=MONTHLY;BYDAY=TU;BYSETPOS=-1", "FREQ=MONTHLY;INTERVAL=1;BYDAY=-1TU"),
    ("RRULE:freq=weekly;byday=we,mo;", "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE"),
    ("FREQ=WEEKLY;INTERVAL=2", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"),  # DTSTART's weekday written out
    ("FREQ=MONTHLY", "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=7"),
    ("FREQ=YEARLY;COUNT=2", "FREQ=YEARLY;INTERVAL=1;BYMONTH=9;BYMONTHDAY=7;COUNT=2"),
    ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR"),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;WKST=SU", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;WKST=SU"),
    ("FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;WKST=SU", "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO"),  # WKST changes nothing here
    ("FREQ=DAILY;UNTIL=20260910", "FREQ=DAILY;INTERVAL=1;UNTIL=20260910T215959Z"),  # end of the local day
    ("FREQ=DAILY;UNTIL=20260910T120000", "FREQ=DAILY;INTERVAL=1;UNTIL=20260910T100000Z"),  # floating: local
    ("FREQ=DAILY;COUNT=999999", "FREQ=DAILY;INTERVAL=1"),  # a bound beyond reason is no bound
])
def test_webex_canonical_text(rule: str, text: str) -> None:
    assert parsed(recurrence_from_webex(rule, start=WEBEX_START, timezone="Europe/Paris")).rrule == text


def test_webex_first_bymonthday_only_changes_the_calendar_as_webex_does() -> None:
    recurrence = parsed(recurrence_from_webex("FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=10,11,12;COUNT=3",
                                              start=paris(2026, 9, 10), timezone="Europe/Paris"))
    assert expand(recurrence, paris(2026, 9, 10)) == [paris(2026, 9, 10), paris(2026, 10, 10), paris(2026, 11, 10)]


@pytest.mark.parametrize(("rule", "reason"), [
    ("FREQ=FORTNIGHTLY;INTERVAL=1", "unknown FREQ"),  # the generator's three broken rules
    ("FREQ=WEEKLY;BYDAY=XX", "BYDAY"),
    ("WEEKLY", "NAME=VALUE"),
    ("", "empty"),
    ("   ", "empty"),
    ("INTERVAL=1;COUNT=3", "without FREQ"),
    ("FREQ=HOURLY;INTERVAL=1", "not supported"),
    ("FREQ=WEEKLY;BYDAY=2MO", "ordinal"),
    ("FREQ=WEEKLY;BYDAY=0MO", "BYDAY"),
    ("FREQ=DAILY;COUNT=2;UNTIL=20261218T000000Z", "both COUNT and UNTIL"),
    ("FREQ=WEEKLY;BYHOUR=9", "BYHOUR"),
    ("FREQ=WEEKLY;FREQ=DAILY", "repeats"),
    ("FREQ=DAILY;INTERVAL=0", "INTERVAL"),
    ("FREQ=DAILY;INTERVAL=two", "INTERVAL"),
    ("FREQ=DAILY;COUNT=0", "COUNT"),
    ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY"),
    ("FREQ=WEEKLY;BYMONTHDAY=3", "BYMONTHDAY with FREQ=WEEKLY"),
    ("FREQ=MONTHLY;BYMONTH=3", "BYMONTH with FREQ=MONTHLY"),
    ("FREQ=DAILY;UNTIL=tomorrow", "UNTIL"),
    ("FREQ=DAILY;UNTIL=20261340T000000Z", "UNTIL"),
    ("FREQ=DAILY;UNTIL=20200101T000000Z", "no occurrence"),
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "no occurrence"),
    ("FREQ=DAILY;INTERVAL=7;BYDAY=TU", "no occurrence"),  # every 7 days from a Monday never meets a Tuesday
])
def test_webex_unparseable_says_why(rule: str, reason: str) -> None:
    result = recurrence_from_webex(rule, start=WEBEX_START, timezone="Europe/Paris")
    assert isinstance(result, Unparseable)
    assert reason in result.reason


_BYDAY = st.lists(st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]), min_size=1, max_size=7, unique=True)
_RULES = st.one_of(
    st.builds(lambda n, c: f"FREQ=DAILY;INTERVAL={n};COUNT={c}", st.integers(1, 5), st.integers(1, 40)),
    st.builds(lambda n, days, c: f"FREQ=WEEKLY;INTERVAL={n};BYDAY={','.join(days)};COUNT={c}",
              st.integers(1, 4), _BYDAY, st.integers(1, 40)),
    st.builds(lambda n, d, c: f"FREQ=MONTHLY;INTERVAL={n};BYMONTHDAY={d};COUNT={c}",
              st.integers(1, 3), st.integers(-31, 31).filter(bool), st.integers(1, 24)),
    st.builds(lambda n, k, day, c: f"FREQ=MONTHLY;INTERVAL={n};BYDAY={k}{day};COUNT={c}",
              st.integers(1, 3), st.sampled_from([1, 2, 3, 4, -1]), st.sampled_from(["MO", "TU", "FR"]),
              st.integers(1, 24)),
)


@settings(max_examples=150, deadline=None)
@given(rule=_RULES, day_offset=st.integers(0, 700), zone=st.sampled_from(sorted(IANA_TO_WINDOWS)))
def test_webex_rules_expand_exactly_as_dateutil_expands_the_source_rule(rule: str, day_offset: int,
                                                                         zone: str) -> None:
    start = datetime.combine(date(2026, 1, 1) + timedelta(days=day_offset), time(9, 30), ZoneInfo(zone))
    recurrence = parsed(recurrence_from_webex(rule, start=start, timezone=zone))
    assert expand(recurrence, start, limit=100) == list(rrulestr(rule, dtstart=start))


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80) | st.lists(st.sampled_from(
    ["FREQ=DAILY", "FREQ=WEEKLY", "FREQ=MONTHLY", "FREQ=YEARLY", "BYDAY=MO,2TU", "BYDAY=-1FR", "BYMONTHDAY=31",
     "BYMONTH=2", "BYSETPOS=-1", "COUNT=3", "UNTIL=20270101T000000Z", "UNTIL=20270101", "INTERVAL=2", "WKST=SU",
     "BYDAY=XX", "x@example.gouv.fr"]), max_size=5).map(";".join))
def test_webex_never_crashes_and_reasons_carry_no_address(text: str) -> None:
    result = recurrence_from_webex(text, start=WEBEX_START, timezone="Europe/Paris")
    if isinstance(result, Unparseable):
        assert "@" not in result.reason
    else:
        last = last_occurrence(result, WEBEX_START)
        assert last is None or last >= WEBEX_START


@settings(max_examples=200, deadline=None)
@given(payload=st.dictionaries(
    st.sampled_from(["type", "repeat_interval", "weekly_days", "monthly_day", "monthly_week", "monthly_week_day",
                     "end_times", "end_date_time"]),
    st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.text(max_size=12),
              st.sampled_from(["2,4", "1", "2026-12-01T08:00:00Z", "a.b@c.fr"]))))
def test_zoom_never_crashes_and_reasons_carry_no_address(payload: dict[str, object]) -> None:
    result = recurrence_from_zoom(payload, start=ZOOM_START, timezone="Europe/Paris")
    if isinstance(result, Unparseable):
        assert "@" not in result.reason


# ------------------------------------------------------------------------------------- one schedule, three platforms

def test_the_same_schedule_written_by_each_platform_gives_the_same_occurrences() -> None:
    """The generator draws a schedule once and writes it the Zoom, Graph and Webex way: one calendar must result."""
    rng = random.Random(20261123)
    kinds = [MeetingKind.WEEKLY, MeetingKind.BIWEEKLY, MeetingKind.DAILY, MeetingKind.MONTHLY_DAY,
             MeetingKind.MONTHLY_NTH_WEEKDAY, MeetingKind.EXPIRED_SERIES]
    compared = 0
    for _ in range(150):
        schedule = draw_schedule(rng, rng.choice(kinds), timezone="Europe/Paris", as_of=AS_OF, needs_end=True)
        assert schedule.start is not None
        start = schedule.start.astimezone(UTC)
        zoom_payload, graph_payload, webex_text = (zoom_recurrence(schedule), graph_recurrence(schedule, "Romance "
                                                   "Standard Time"), webex_rrule(schedule))
        assert zoom_payload is not None and graph_payload is not None and webex_text is not None
        forms = [parsed(recurrence_from_zoom(zoom_payload, start=start, timezone="Europe/Paris")),
                 parsed(recurrence_from_graph(graph_payload, start=start)),
                 parsed(recurrence_from_webex(webex_text, start=start, timezone="Europe/Paris"))]
        local_start = schedule.start
        calendars = [list(islice(rrulestr(form.rrule, dtstart=local_start), 400)) for form in forms]
        assert calendars[0] == calendars[1] == calendars[2], (schedule, [form.rrule for form in forms])
        assert calendars[0][0] == schedule.start
        compared += 1
    assert compared == 150


# ------------------------------------------------------------------------------------------------ classification

WEEK = "FREQ=WEEKLY;INTERVAL={n};BYDAY={days}"


@pytest.mark.parametrize(("rule", "kind"), [
    ("FREQ=DAILY;INTERVAL=1", MeetingKind.DAILY),
    ("FREQ=DAILY;INTERVAL=2", MeetingKind.DAILY),
    (WEEK.format(n=1, days="MO,TU,WE,TH,FR"), MeetingKind.DAILY),  # stand-ups
    (WEEK.format(n=1, days="MO,TU,WE,TH"), MeetingKind.WEEKLY),
    (WEEK.format(n=1, days="MO,TU,WE,TH,FR,SA"), MeetingKind.WEEKLY),
    (WEEK.format(n=2, days="MO,TU,WE,TH,FR"), MeetingKind.BIWEEKLY),
    (WEEK.format(n=1, days="TU"), MeetingKind.WEEKLY),
    (WEEK.format(n=2, days="TU"), MeetingKind.BIWEEKLY),
    (WEEK.format(n=3, days="TU"), MeetingKind.WEEKLY),
    ("FREQ=MONTHLY;INTERVAL=1;BYDAY=2TU", MeetingKind.MONTHLY_NTH_WEEKDAY),
    ("FREQ=MONTHLY;INTERVAL=1;BYDAY=-1FR", MeetingKind.MONTHLY_NTH_WEEKDAY),
    ("FREQ=MONTHLY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1", MeetingKind.MONTHLY_NTH_WEEKDAY),
    ("FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=15", MeetingKind.MONTHLY_DAY),
    ("FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=28,29,30,31;BYSETPOS=-1", MeetingKind.MONTHLY_DAY),
    ("FREQ=YEARLY;INTERVAL=1;BYMONTH=3;BYMONTHDAY=15", MeetingKind.MONTHLY_DAY),
    ("FREQ=YEARLY;INTERVAL=1;BYMONTH=11;BYDAY=4TH", MeetingKind.MONTHLY_NTH_WEEKDAY),
])
def test_classify_by_rule_shape(rule: str, kind: MeetingKind) -> None:
    recurrence = Recurrence(rule, "Europe/Paris")
    assert classify_meeting(recurrence=recurrence, start=paris(2026, 9, 1), now=NOW) is kind


def test_classify_flags_come_first_and_no_rule_is_a_one_off() -> None:
    weekly = Recurrence(WEEK.format(n=1, days="MO"), "Europe/Paris")
    start = paris(2026, 9, 7)
    assert classify_meeting(recurrence=weekly, start=start, now=NOW, personal_room=True,
                            no_fixed_time=True) is MeetingKind.PERSONAL_ROOM
    assert classify_meeting(recurrence=None, start=None, now=NOW, no_fixed_time=True) is MeetingKind.NO_FIXED_TIME
    assert classify_meeting(recurrence=None, start=start, now=NOW) is MeetingKind.ONE_OFF
    assert classify_meeting(recurrence=weekly, start=start, now=NOW, ended=True) is MeetingKind.EXPIRED_SERIES
    assert classify_meeting(recurrence=weekly, start=None, now=NOW) is MeetingKind.WEEKLY


def test_a_series_expires_once_its_last_occurrence_has_started() -> None:
    start = paris(2026, 11, 2)  # Mondays 2, 9, 16 November
    recurrence = Recurrence(WEEK.format(n=1, days="MO") + ";COUNT=3", "Europe/Paris")
    last = paris(2026, 11, 16)
    assert last_occurrence(recurrence, start) == last
    assert classify_meeting(recurrence=recurrence, start=start, now=last) is MeetingKind.WEEKLY
    assert classify_meeting(recurrence=recurrence, start=start,
                            now=last + timedelta(seconds=1)) is MeetingKind.EXPIRED_SERIES


# ------------------------------------------------------------------------------------------------ the generator's truth

@pytest.fixture(scope="module")
def ministry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("recurrence-ministry")
    # Seed 4 at 600 agents holds one deliberately broken Teams series and one broken Webex rule.
    manifest = generate_ministry(out, GeneratorOptions(agents=600, seed=4, as_of=AS_OF, parallel=False))
    return out, manifest


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for line in handle:
            yield json.loads(line)


def _check(outcomes: Counter[str], platform: str, result: Recurrence | Unparseable | None, *,
           start: datetime | None, truth: str, broken: bool, **flags: bool) -> None:
    outcomes[f"truth:{truth}"] += 1
    if broken:
        assert isinstance(result, Unparseable), (platform, result)
        outcomes["unparseable"] += 1
        return
    assert not isinstance(result, Unparseable), (platform, result)
    kind = classify_meeting(recurrence=result, start=start, now=NOW, **flags)
    assert kind == truth, (platform, result, start)
    if result is not None and start is not None and kind is not MeetingKind.EXPIRED_SERIES:
        assert next_occurrence(result, start, after=NOW) is not None  # a live series has a future occurrence
    outcomes[kind] += 1


def test_classification_reproduces_the_generator_ground_truth(ministry: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = ministry
    seen: dict[str, Counter[str]] = {"zoom": Counter(), "teams": Counter(), "webex": Counter()}

    for meeting in _lines(out / "zoom" / "meetings.jsonl"):
        start = datetime.fromisoformat(meeting["start_time"]) if "start_time" in meeting else None
        result = None
        if meeting["type"] == 8:
            assert start is not None
            result = recurrence_from_zoom(meeting["recurrence"], start=start, timezone=meeting["timezone"])
            if isinstance(result, Recurrence) and "end_date_time" in meeting["recurrence"]:
                end = datetime.fromisoformat(meeting["recurrence"]["end_date_time"])
                last = last_occurrence(result, start)
                assert last is not None and end - timedelta(days=36) < last <= end  # monthly gaps reach 35 days
        _check(seen["zoom"], "zoom", result, start=start, truth=meeting["_kind"], broken=False,
               no_fixed_time=meeting["type"] == 3, personal_room=meeting["settings"]["use_pmi"])

    for event in _lines(out / "teams" / "events.jsonl"):
        if event["_kind"] == "not_online":
            continue
        start = datetime.fromisoformat(event["start"]["dateTime"][:19]).replace(tzinfo=UTC)
        pattern = (event["recurrence"] or {}).get("pattern", {})
        broken = pattern.get("type") == "weekly" and not pattern.get("daysOfWeek")
        result = recurrence_from_graph(event["recurrence"], start=start) if event["recurrence"] else None
        _check(seen["teams"], "teams", result, start=start, truth=event["_kind"], broken=broken)

    for meeting in _lines(out / "webex" / "meetings.jsonl"):
        start = datetime.fromisoformat(meeting["start"])
        text = meeting.get("recurrence")
        broken = text in ("FREQ=FORTNIGHTLY;INTERVAL=1", "FREQ=WEEKLY;BYDAY=XX", "WEEKLY")
        result = recurrence_from_webex(text, start=start, timezone=meeting["timezone"]) if text else None
        # A personal room is told by its link (a webinar held in the room has scheduledType "webinar"), and a
        # series Webex reports as expired is one, even when a rewritten rule lost its UNTIL.
        room = parse_join_url(meeting["webLink"])
        _check(seen["webex"], "webex", result, start=start, truth=meeting["_kind"], broken=broken,
               personal_room=meeting["scheduledType"] == "personalRoomMeeting" or str(room).startswith("webex:room:"),
               ended=meeting["state"] == "expired")

    for platform, outcomes in seen.items():
        quarantined = manifest["extract_quarantine"].get(platform, {}).get("RECURRENCE_UNPARSEABLE", 0)
        assert outcomes["unparseable"] == quarantined
        truth = {kind: count for kind, count in manifest["meetings"][platform].items()
                 if kind not in ("total", "not_online_events")}
        visited = {kind.removeprefix("truth:"): count for kind, count in outcomes.items() if kind.startswith("truth:")}
        assert visited == truth  # every meeting of the manifest was visited, once
    assert seen["teams"]["unparseable"] >= 1 and seen["webex"]["unparseable"] >= 1  # the broken paths ran
