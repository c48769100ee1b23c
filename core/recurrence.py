"""Recurrence rules from Zoom, Graph and Webex in one form (RFC 5545 RRULE + IANA zone), expanded with dateutil.

Canonical text: `FREQ=…;INTERVAL=n`, then `BYMONTH`, `BYDAY`, `BYMONTHDAY`, `BYSETPOS`, `WKST` when present, then
`COUNT` or `UNTIL` (UTC, `YYYYMMDDTHHMMSSZ`). Defaults that RFC 5545 takes from DTSTART are written out (a weekly
rule always carries its BYDAY, a monthly one its BYMONTHDAY or BYDAY), so one schedule has one text. Rules are
expanded from the first start in the series' IANA zone, never in UTC: a 10:00 meeting stays at 10:00 across DST.

Bounds farther than a century or `_MAX_COUNT` occurrences are read as "no end": nothing practical changes and
expansions stay cheap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import rrule as dateutil_rrule

from core.records import MeetingKind, Recurrence
from core.timezones import WINDOWS_TO_IANA

__all__ = [
    "WEEKDAYS",
    "Unparseable",
    "classify_meeting",
    "last_occurrence",
    "next_occurrence",
    "recurrence_from_graph",
    "recurrence_from_webex",
    "recurrence_from_zoom",
]

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_WORKWEEK = frozenset(WEEKDAYS[:5])
_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_SUB_DAILY = frozenset({"SECONDLY", "MINUTELY", "HOURLY"})
_ZOOM_DAYS = {1: "SU", 2: "MO", 3: "TU", 4: "WE", 5: "TH", 6: "FR", 7: "SA"}
_GRAPH_DAYS = {"monday": "MO", "tuesday": "TU", "wednesday": "WE", "thursday": "TH", "friday": "FR",
               "saturday": "SA", "sunday": "SU"}
_GRAPH_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_GRAPH_NO_DATE = date(1, 1, 1)  # what the service writes into unused date members
_MAX_COUNT = 5000
_HORIZON = timedelta(days=100 * 366)
_BYDAY_RE = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_INT_RE = re.compile(r"[+-]?\d{1,9}")


@dataclass(frozen=True, slots=True)
class Unparseable:
    """A source recurrence that cannot be turned into a rule; `reason` is shown in quarantine (no e-mails)."""

    reason: str


@dataclass(frozen=True, slots=True)
class _Rule:
    freq: str
    interval: int = 1
    bymonth: tuple[int, ...] = ()
    byday: tuple[str, ...] = ()
    bymonthday: tuple[int, ...] = ()
    bysetpos: int | None = None
    wkst: str | None = None
    count: int | None = None
    until: datetime | None = None

    def text(self) -> str:
        parts = [f"FREQ={self.freq}", f"INTERVAL={self.interval}"]
        if self.bymonth:
            parts.append("BYMONTH=" + ",".join(str(month) for month in self.bymonth))
        if self.byday:
            parts.append("BYDAY=" + ",".join(self.byday))
        if self.bymonthday:
            parts.append("BYMONTHDAY=" + ",".join(str(day) for day in self.bymonthday))
        if self.bysetpos is not None:
            parts.append(f"BYSETPOS={self.bysetpos}")
        if self.wkst is not None:
            parts.append(f"WKST={self.wkst}")
        if self.count is not None:
            parts.append(f"COUNT={self.count}")
        elif self.until is not None:
            parts.append("UNTIL=" + self.until.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
        return ";".join(parts)


# ------------------------------------------------------------------------------------------------ sources

def recurrence_from_zoom(recurrence: Mapping[str, object], *, start: datetime,
                         timezone: str) -> Recurrence | Unparseable:
    """A Zoom `recurrence` object (type 8 meetings) as a rule; `start` is the first start, `timezone` the meeting's.

    `weekly_days` and `monthly_week_day` count from 1 = Sunday. `end_date_time` is UNTIL as an instant (inclusive);
    when both ends are present it wins (the spec gives `end_times` a default of 1). A monthly object carrying both
    forms is read by week.
    """
    _require_aware(start, "start")
    zone = _zone(timezone)
    if zone is None:
        return Unparseable(f"unknown time zone {_shown(timezone)}")
    kind = _int(recurrence.get("type"))
    raw_interval = recurrence.get("repeat_interval")
    interval = 1 if raw_interval is None else _int(raw_interval)
    if interval is None or interval < 1:
        return Unparseable(f"Zoom repeat_interval {_shown(raw_interval)} is not a positive integer")
    if kind == 1:
        rule = _Rule("DAILY", interval)
    elif kind == 2:
        days = _zoom_weekly_days(recurrence.get("weekly_days"))
        if isinstance(days, Unparseable):
            return days
        rule = _Rule("WEEKLY", interval, byday=days)
    elif kind == 3:
        monthly = _zoom_monthly(recurrence, interval)
        if isinstance(monthly, Unparseable):
            return monthly
        rule = monthly
    else:
        return Unparseable(f"Zoom recurrence type {_shown(recurrence.get('type'))} is not 1, 2 or 3")

    end_date_time = recurrence.get("end_date_time")
    if end_date_time not in (None, ""):
        until = _parse_instant(end_date_time)
        if until is None:
            return Unparseable(f"Zoom end_date_time {_shown(end_date_time)} is not an ISO 8601 instant")
        rule = replace(rule, until=until)
    elif recurrence.get("end_times") is not None:
        count = _int(recurrence.get("end_times"))
        if count is None or count < 1:
            return Unparseable(f"Zoom end_times {_shown(recurrence.get('end_times'))} is not a positive integer")
        rule = replace(rule, count=count)
    return _finish(rule, start.astimezone(zone), timezone)


def recurrence_from_graph(recurrence: Mapping[str, object], *, start: datetime) -> Recurrence | Unparseable:
    """A Graph patternedRecurrence as a rule, in the IANA zone of `range.recurrenceTimeZone`.

    Members are read according to `pattern.type` and `range.type` only (the service fills the others with 0,
    "first" or 0001-01-01). `endDate` is inclusive in the series' zone. As in Exchange, a `dayOfMonth` beyond the
    end of a month falls on its last day (`BYMONTHDAY=28,…,d;BYSETPOS=-1`).
    """
    _require_aware(start, "start")
    pattern = recurrence.get("pattern")
    span = recurrence.get("range")
    if not isinstance(pattern, Mapping) or not isinstance(span, Mapping):
        return Unparseable("Graph recurrence without pattern or range")
    timezone = _graph_zone(span.get("recurrenceTimeZone"))
    if isinstance(timezone, Unparseable):
        return timezone
    zone = _zone(timezone)
    assert zone is not None  # _graph_zone only returns loadable zones

    rule = _graph_pattern(pattern)
    if isinstance(rule, Unparseable):
        return rule
    range_type = span.get("type")
    if range_type == "endDate":
        end = _parse_date(span.get("endDate"))
        if end is None or end == _GRAPH_NO_DATE:
            return Unparseable(f"Graph endDate range without a valid endDate ({_shown(span.get('endDate'))})")
        rule = replace(rule, until=datetime.combine(end, time(23, 59, 59), zone).astimezone(UTC))
    elif range_type == "numbered":
        count = _int(span.get("numberOfOccurrences"))
        if count is None or count < 1:
            return Unparseable(f"Graph numbered range with numberOfOccurrences "
                               f"{_shown(span.get('numberOfOccurrences'))}")
        rule = replace(rule, count=count)
    elif range_type != "noEnd":
        return Unparseable(f"Graph range type {_shown(range_type)} is not endDate, noEnd or numbered")
    return _finish(rule, start.astimezone(zone), timezone)


def recurrence_from_webex(rrule: str, *, start: datetime, timezone: str) -> Recurrence | Unparseable:
    """A Webex RRULE (no `RRULE:` prefix) as a canonical rule, with `start` as DTSTART in `timezone`.

    Webex honours only the first BYMONTHDAY / BYDAY value of a MONTHLY or YEARLY rule, so the others are dropped.
    UNTIL is read as RFC 5545 says: an instant when it ends in Z, a local time otherwise, the end of that local
    day when it is a bare date.
    """
    _require_aware(start, "start")
    zone = _zone(timezone)
    if zone is None:
        return Unparseable(f"unknown time zone {_shown(timezone)}")
    fields = _split_rrule(rrule)
    if isinstance(fields, Unparseable):
        return fields
    rule = _webex_rule(fields, zone)
    if isinstance(rule, Unparseable):
        return rule
    return _finish(rule, start.astimezone(zone), timezone)


# ------------------------------------------------------------------------------------------------ expansion

def next_occurrence(recurrence: Recurrence, start: datetime, *, after: datetime) -> datetime | None:
    """The first occurrence strictly after `after` (aware, in the series' zone); None once the series is over."""
    _require_aware(after, "after")
    compiled = _compile(recurrence.rrule, recurrence.timezone, start)
    found: datetime | None = compiled.after(after, inc=False)
    return found


def last_occurrence(recurrence: Recurrence, start: datetime) -> datetime | None:
    """The start of the last occurrence (aware, in the series' zone); None: the series never ends."""
    fields = _fields(recurrence.rrule)
    if "COUNT" not in fields and "UNTIL" not in fields:
        return None
    return _last(recurrence.rrule, recurrence.timezone, start)


def classify_meeting(*, recurrence: Recurrence | None, start: datetime | None, now: datetime,
                     no_fixed_time: bool = False, personal_room: bool = False, ended: bool = False) -> MeetingKind:
    """What a meeting is for the migration (see MeetingKind), judged at `now`.

    A series is EXPIRED_SERIES when its last occurrence started before `now`, or when the platform says it is over
    (`ended`: Webex `state == "expired"`), whatever its rule says.

    Yearly rules have no kind of their own: a date-anchored one counts as MONTHLY_DAY and a weekday-anchored one
    as MONTHLY_NTH_WEEKDAY, the kinds they are rewritten like. A MONTHLY rule on plain weekdays ("every Monday")
    is WEEKLY.
    """
    _require_aware(now, "now")
    if personal_room:
        return MeetingKind.PERSONAL_ROOM
    if no_fixed_time:
        return MeetingKind.NO_FIXED_TIME
    if recurrence is None:
        return MeetingKind.ONE_OFF
    if ended:
        return MeetingKind.EXPIRED_SERIES
    if start is not None:
        last = last_occurrence(recurrence, start)
        if last is not None and last < now:
            return MeetingKind.EXPIRED_SERIES
    fields = _fields(recurrence.rrule)
    freq = fields.get("FREQ")
    interval = int(fields.get("INTERVAL", "1"))
    byday = [day for day in fields.get("BYDAY", "").split(",") if day]
    if freq == "DAILY":
        return MeetingKind.DAILY
    if freq == "WEEKLY":
        if interval == 1 and len(byday) == len(_WORKWEEK) and set(byday) == _WORKWEEK:
            return MeetingKind.DAILY
        return MeetingKind.BIWEEKLY if interval == 2 else MeetingKind.WEEKLY
    if freq in ("MONTHLY", "YEARLY"):
        if byday and ("BYSETPOS" in fields or any(not day.isalpha() for day in byday)):
            return MeetingKind.MONTHLY_NTH_WEEKDAY
        if byday and "BYMONTHDAY" not in fields and freq == "MONTHLY":
            return MeetingKind.WEEKLY
        return MeetingKind.MONTHLY_DAY
    raise ValueError(f"not a bascule recurrence rule: FREQ={freq}")


# ------------------------------------------------------------------------------------------------ Zoom parts

def _zoom_weekly_days(value: object) -> tuple[str, ...] | Unparseable:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return Unparseable("Zoom weekly recurrence without weekly_days")
    days: set[str] = set()
    for item in value.split(","):
        number = _int(item.strip())
        if number not in _ZOOM_DAYS:
            return Unparseable(f"Zoom weekly_days {_shown(value)} is not a list of 1 (Sunday) to 7 (Saturday)")
        days.add(_ZOOM_DAYS[number])
    return _week_order(days)


def _zoom_monthly(recurrence: Mapping[str, object], interval: int) -> _Rule | Unparseable:
    week = _int(recurrence.get("monthly_week"))
    weekday = _int(recurrence.get("monthly_week_day"))
    if week is not None and weekday is not None and week != 0:
        if week not in (-1, 1, 2, 3, 4) or weekday not in _ZOOM_DAYS:
            return Unparseable(f"Zoom monthly_week {week} / monthly_week_day {weekday} out of range")
        return _Rule("MONTHLY", interval, byday=(f"{week}{_ZOOM_DAYS[weekday]}",))
    day = _int(recurrence.get("monthly_day"))
    if day is None or not 1 <= day <= 31:
        return Unparseable("Zoom monthly recurrence without a monthly_day (1-31) or a monthly_week pair")
    return _Rule("MONTHLY", interval, bymonthday=(day,))


# ------------------------------------------------------------------------------------------------ Graph parts

def _graph_zone(value: object) -> str | Unparseable:
    if not isinstance(value, str) or not value.strip():
        return Unparseable("Graph range without a recurrenceTimeZone")
    name = value.strip()
    mapped = WINDOWS_TO_IANA.get(name)
    if mapped is not None:
        return mapped
    if "/" in name and _zone(name) is not None:  # an IANA name, as Graph echoes when a client wrote one
        return name
    return Unparseable(f"Windows time zone {_shown(name)} is not in core.timezones.WINDOWS_TO_IANA")


def _graph_pattern(pattern: Mapping[str, object]) -> _Rule | Unparseable:
    kind = pattern.get("type")
    interval = _int(pattern.get("interval"))
    if interval is None or interval < 1:
        return Unparseable(f"Graph pattern interval {_shown(pattern.get('interval'))} is not a positive integer")
    if kind == "daily":
        return _Rule("DAILY", interval)
    days: tuple[str, ...] = ()
    if kind in ("weekly", "relativeMonthly", "relativeYearly"):
        parsed = _graph_days(pattern.get("daysOfWeek"), kind)
        if isinstance(parsed, Unparseable):
            return parsed
        days = parsed
    if kind == "weekly":
        first_day = pattern.get("firstDayOfWeek")
        wkst = _GRAPH_DAYS.get(first_day.lower()) if isinstance(first_day, str) else None
        return _Rule("WEEKLY", interval, byday=days, wkst=wkst)
    month: tuple[int, ...] = ()
    if kind in ("absoluteYearly", "relativeYearly"):
        number = _int(pattern.get("month"))
        if number is None or not 1 <= number <= 12:
            return Unparseable(f"Graph {kind} pattern with month {_shown(pattern.get('month'))}")
        month = (number,)
    freq = "YEARLY" if month else "MONTHLY"
    if kind in ("absoluteMonthly", "absoluteYearly"):
        day = _int(pattern.get("dayOfMonth"))
        if day is None or not 1 <= day <= 31:
            return Unparseable(f"Graph {kind} pattern with dayOfMonth {_shown(pattern.get('dayOfMonth'))}")
        if day <= 28:
            return _Rule(freq, interval, bymonth=month, bymonthday=(day,))
        return _Rule(freq, interval, bymonth=month, bymonthday=tuple(range(28, day + 1)), bysetpos=-1)
    if kind in ("relativeMonthly", "relativeYearly"):
        index = pattern.get("index")
        position = _GRAPH_INDEX.get(index) if isinstance(index, str) else None
        if position is None:
            return Unparseable(f"Graph {kind} pattern with index {_shown(index)}")
        if len(days) == 1:
            return _Rule(freq, interval, bymonth=month, byday=(f"{position}{days[0]}",))
        return _Rule(freq, interval, bymonth=month, byday=days, bysetpos=position)
    return Unparseable(f"Graph pattern type {_shown(kind)} is not supported")


def _graph_days(value: object, kind: str) -> tuple[str, ...] | Unparseable:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        return Unparseable(f"Graph {kind} pattern without daysOfWeek")
    days: set[str] = set()
    for item in value:
        code = _GRAPH_DAYS.get(item.lower()) if isinstance(item, str) else None
        if code is None:
            return Unparseable(f"Graph daysOfWeek value {_shown(item)} is not a day name")
        days.add(code)
    return _week_order(days)


# ------------------------------------------------------------------------------------------------ Webex parts

def _split_rrule(text: str) -> dict[str, str] | Unparseable:
    body = text.strip()
    if body[:6].upper() == "RRULE:":
        body = body[6:]
    if not body:
        return Unparseable("empty RRULE")
    fields: dict[str, str] = {}
    for part in body.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip().upper()
        if not sep or not name or not value.strip():
            return Unparseable(f"RRULE part {_shown(part)} is not NAME=VALUE")
        if name in fields:
            return Unparseable(f"RRULE repeats {_shown(name)}")
        fields[name] = value.strip().upper()
    return fields


def _webex_rule(fields: Mapping[str, str], zone: ZoneInfo) -> _Rule | Unparseable:
    freq = fields.get("FREQ")
    if freq is None:
        return Unparseable("RRULE without FREQ")
    if freq in _SUB_DAILY:
        return Unparseable(f"FREQ={_shown(freq)} is not supported")
    if freq not in _FREQS:
        return Unparseable(f"unknown FREQ={_shown(freq)}")
    unsupported = sorted(set(fields) - {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS",
                                        "COUNT", "UNTIL", "WKST"})
    if unsupported:
        return Unparseable(f"RRULE part {_shown(unsupported[0])} is not supported")
    monthly_or_yearly = freq in ("MONTHLY", "YEARLY")

    interval = _int(fields.get("INTERVAL", "1"))
    if interval is None or interval < 1:
        return Unparseable(f"INTERVAL={_shown(fields.get('INTERVAL'))} is not a positive integer")
    byday: list[str] = []
    for item in _list(fields.get("BYDAY")):
        match = _BYDAY_RE.fullmatch(item)
        ordinal = int(match.group(1)) if match and match.group(1) else 0
        if match is None or abs(ordinal) > 53 or (match.group(1) and ordinal == 0):
            return Unparseable(f"BYDAY value {_shown(item)} is not a weekday")
        if ordinal and not monthly_or_yearly:
            return Unparseable(f"BYDAY ordinal {_shown(item)} with FREQ={freq}")
        byday.append(f"{ordinal}{match.group(2)}" if ordinal else match.group(2))
    bymonthday = _int_list(fields.get("BYMONTHDAY"), low=1, high=31, signed=True)
    bymonth = _int_list(fields.get("BYMONTH"), low=1, high=12, signed=False)
    setpos = _int_list(fields.get("BYSETPOS"), low=1, high=366, signed=True)
    for name, parsed in (("BYMONTHDAY", bymonthday), ("BYMONTH", bymonth), ("BYSETPOS", setpos)):
        if parsed is None:
            return Unparseable(f"{name}={_shown(fields.get(name))} is out of range")
    assert bymonthday is not None and bymonth is not None and setpos is not None
    if bymonthday and not monthly_or_yearly:
        return Unparseable(f"BYMONTHDAY with FREQ={freq}")
    if bymonth and freq != "YEARLY":
        return Unparseable(f"BYMONTH with FREQ={freq}")
    if setpos and not monthly_or_yearly:
        return Unparseable(f"BYSETPOS with FREQ={freq}")
    if len(setpos) > 1:
        return Unparseable("BYSETPOS with several positions")
    wkst = fields.get("WKST")
    if wkst is not None and wkst not in WEEKDAYS:
        return Unparseable(f"WKST={_shown(wkst)} is not a weekday")

    count: int | None = None
    until: datetime | None = None
    if "COUNT" in fields and "UNTIL" in fields:
        return Unparseable("RRULE with both COUNT and UNTIL")
    if "COUNT" in fields:
        count = _int(fields["COUNT"])
        if count is None or count < 1:
            return Unparseable(f"COUNT={_shown(fields['COUNT'])} is not a positive integer")
    if "UNTIL" in fields:
        until = _parse_until(fields["UNTIL"], zone)
        if until is None:
            return Unparseable(f"UNTIL={_shown(fields['UNTIL'])} is not an RFC 5545 date or date-time")

    position = setpos[0] if setpos else None
    if monthly_or_yearly:  # Webex keeps only the first day or date of a monthly/yearly rule
        byday, bymonthday = byday[:1], bymonthday[:1]
        if position is not None and len(byday) == 1 and byday[0].isalpha() and not bymonthday and abs(position) <= 5:
            byday, position = [f"{position}{byday[0]}"], None
    if freq == "DAILY" and interval == 1 and byday:  # "every weekday" written as a filtered daily rule
        freq = "WEEKLY"
    if freq in ("DAILY", "WEEKLY"):
        byday = list(_week_order(set(byday)))
    return _Rule(freq, interval, bymonth=tuple(sorted(set(bymonth))), byday=tuple(byday),
                 bymonthday=tuple(bymonthday), bysetpos=position, wkst=wkst,
                 count=count, until=until)


def _parse_until(value: str, zone: ZoneInfo) -> datetime | None:
    try:
        if re.fullmatch(r"\d{8}", value):
            day = datetime.strptime(value, "%Y%m%d").date()  # noqa: DTZ007 - a bare date, placed in `zone` below
            return datetime.combine(day, time(23, 59, 59), zone).astimezone(UTC)
        if re.fullmatch(r"\d{8}T\d{6}Z", value):
            return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if re.fullmatch(r"\d{8}T\d{6}", value):
            return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=zone).astimezone(UTC)
    except ValueError:
        return None
    return None


# ------------------------------------------------------------------------------------------------ shared

def _finish(rule: _Rule, start: datetime, timezone: str) -> Recurrence | Unparseable:
    """Write out the DTSTART defaults, drop absurd bounds, then let dateutil validate and expand the rule."""
    start = start.replace(microsecond=0)  # dateutil drops them from DTSTART
    if rule.freq == "WEEKLY" and not rule.byday:
        rule = replace(rule, byday=(WEEKDAYS[start.weekday()],))
    if rule.freq in ("MONTHLY", "YEARLY") and not rule.byday and not rule.bymonthday:
        rule = replace(rule, bymonthday=(start.day,))
        if rule.freq == "YEARLY" and not rule.bymonth:
            rule = replace(rule, bymonth=(start.month,))
    # WKST only changes which weeks an every-n-weeks rule keeps when it has several days.
    if rule.wkst == "MO" or not (rule.freq == "WEEKLY" and rule.interval > 1 and len(rule.byday) > 1):
        rule = replace(rule, wkst=None)
    if rule.count is not None and rule.count > _MAX_COUNT:
        rule = replace(rule, count=None)
    if rule.until is not None and rule.until - start > _HORIZON:
        rule = replace(rule, until=None)
    if rule.freq == "DAILY" and rule.byday and not any(
            WEEKDAYS[(start + timedelta(days=rule.interval * step)).weekday()] in rule.byday for step in range(7)):
        return Unparseable("the rule has no occurrence: its days never fall on its BYDAY")
    text = rule.text()
    try:
        compiled = _compile(text, timezone, start)
        first = next(iter(compiled), None)
    except (ValueError, TypeError, OverflowError):
        return Unparseable(f"rule {_shown(text, limit=120)} rejected by dateutil")
    if first is None:
        return Unparseable("the rule has no occurrence from the meeting's start")
    return Recurrence(rrule=text, timezone=timezone)


def _compile(text: str, timezone: str, start: datetime) -> dateutil_rrule.rrule:
    _require_aware(start, "start")
    zone = _zone(timezone)
    if zone is None:
        raise ValueError(f"unknown time zone {timezone!r}")
    return _compiled(text, timezone, start.astimezone(zone).replace(microsecond=0))


@lru_cache(maxsize=8192)
def _compiled(text: str, timezone: str, dtstart: datetime) -> dateutil_rrule.rrule:
    # `timezone` is part of the key: two aware starts at one instant in two zones are equal keys, and a series
    # would be expanded in the other's zone (wrong after a change of time).
    parsed = dateutil_rrule.rrulestr(text, dtstart=dtstart, cache=False)
    if not isinstance(parsed, dateutil_rrule.rrule):
        raise ValueError("one RRULE expected")
    return parsed


@lru_cache(maxsize=8192)
def _last(text: str, timezone: str, start: datetime) -> datetime:
    last: datetime | None = None
    for last in _compile(text, timezone, start):  # noqa: B007 - only the final occurrence is wanted
        pass
    if last is None:
        raise ValueError("the rule has no occurrence")
    return last


def _fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.partition("=")
        fields[name.strip().upper()] = value.strip().upper()
    return fields


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _week_order(days: set[str]) -> tuple[str, ...]:
    return tuple(day for day in WEEKDAYS if day in days)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value)
    return None


def _list(value: str | None) -> list[str]:
    return [item.strip() for item in value.split(",")] if value else []


def _int_list(value: str | None, *, low: int, high: int, signed: bool) -> list[int] | None:
    numbers: list[int] = []
    for item in _list(value):
        number = _int(item)
        if number is None or not low <= (abs(number) if signed else number) <= high:
            return None
        if number not in numbers:
            numbers.append(number)
    return numbers


def _parse_instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _parse_date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _shown(value: object, *, limit: int = 40) -> str:
    """A source value fit for a quarantine reason: short, and never an e-mail address."""
    text = repr(value)
    if "@" in text:
        return "<redacted>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
