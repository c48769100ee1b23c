"""Meeting schedules: drawn once in neutral form, then written the way each platform writes them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core import MeetingKind
from sandbox.generator.identities import between, pick

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_ZOOM_DAY = {"SU": "1", "MO": "2", "TU": "3", "WE": "4", "TH": "5", "FR": "6", "SA": "7"}
_GRAPH_DAY = {"MO": "monday", "TU": "tuesday", "WE": "wednesday", "TH": "thursday", "FR": "friday",
              "SA": "saturday", "SU": "sunday"}
_GRAPH_INDEX = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
_ZONES: dict[str, ZoneInfo] = {}


def zone(name: str) -> ZoneInfo:
    """ZoneInfo objects, cached (constructing them is the slow part of a large run)."""
    found = _ZONES.get(name)
    if found is None:
        found = _ZONES[name] = ZoneInfo(name)
    return found


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a meeting happens, platform-neutral. `start` is the first occurrence, aware, in `timezone`."""

    kind: MeetingKind
    timezone: str
    start: datetime | None
    duration: int
    freq: str | None = None
    interval: int = 1
    byday: tuple[str, ...] = ()
    month_day: int | None = None
    month_week: int | None = None
    month_weekday: str | None = None
    count: int | None = None
    until: date | None = None

    @property
    def recurring(self) -> bool:
        return self.freq is not None

    def until_instant(self) -> datetime | None:
        """The last occurrence's start on the `until` day, as an aware UTC instant."""
        if self.until is None or self.start is None:
            return None
        local = datetime.combine(self.until, self.start.timetz().replace(tzinfo=None), zone(self.timezone))
        return local.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class _Rule:
    freq: str
    interval: int = 1
    byday: tuple[str, ...] = ()
    month_day: int | None = None
    month_week: int | None = None
    month_weekday: str | None = None


def draw_schedule(rng: random.Random, kind: MeetingKind, *, timezone: str, as_of: date,
                  needs_end: bool = False) -> Schedule:
    """A plausible schedule of `kind` relative to `as_of`; `needs_end` for Zoom, whose series always end."""
    duration = pick(rng, (30, 30, 45, 60, 60, 60, 90, 120))
    clock = time(pick(rng, range(8, 18)), pick(rng, (0, 0, 30)))
    if kind in (MeetingKind.NO_FIXED_TIME, MeetingKind.PERSONAL_ROOM):
        return Schedule(kind, timezone, None, 60)
    if kind is MeetingKind.ONE_OFF:
        day = as_of + timedelta(days=between(rng, 1, 90))
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return Schedule(kind, timezone, _local(day, clock, timezone), duration)
    if kind is MeetingKind.DAILY:
        duration, clock = 15, time(9, 30)
        rule = _Rule("WEEKLY", byday=WEEKDAYS[:5]) if rng.random() < 0.6 else _Rule("DAILY")
    elif kind in (MeetingKind.WEEKLY, MeetingKind.BIWEEKLY):
        rule = _Rule("WEEKLY", interval=2 if kind is MeetingKind.BIWEEKLY else 1,
                     byday=(pick(rng, WEEKDAYS[:5]),))
    elif kind is MeetingKind.MONTHLY_NTH_WEEKDAY:
        rule = _Rule("MONTHLY", month_week=pick(rng, (1, 2, 3, 4, -1)), month_weekday=pick(rng, WEEKDAYS[:5]))
    elif kind is MeetingKind.MONTHLY_DAY:
        rule = _Rule("MONTHLY", month_day=between(rng, 1, 28))
    elif kind is MeetingKind.EXPIRED_SERIES:
        rule = (_Rule("WEEKLY", byday=(pick(rng, WEEKDAYS[:5]),)) if rng.random() < 0.7
                else _Rule("MONTHLY", month_day=between(rng, 1, 28)))
    else:
        raise ValueError(f"no schedule for {kind}")

    if kind is MeetingKind.EXPIRED_SERIES:
        ended = as_of - timedelta(days=between(rng, 2, 150))
        first = _first_on_or_after(ended - timedelta(days=between(rng, 60, 300)), rule)
        return _schedule(kind, timezone, _local(first, clock, timezone), duration, rule, until=ended)
    first = _first_on_or_after(as_of - timedelta(days=between(rng, -21, 300)), rule)
    end_roll = rng.random()
    until: date | None = None
    count: int | None = None
    if end_roll < (0.6 if needs_end else 0.35):
        # never before the first occurrence (a monthly rule may start weeks after the drawn date)
        until = max(as_of + timedelta(days=between(rng, 30, 365)), first + timedelta(days=62))
    elif end_roll < (1.0 if needs_end else 0.6):
        count = _elapsed_upper_bound(first, as_of, rule) + between(rng, 4, 40)
        if needs_end and count > 365:  # Zoom caps end_times at 365
            count, until = None, max(as_of + timedelta(days=between(rng, 30, 365)), first + timedelta(days=62))
    return _schedule(kind, timezone, _local(first, clock, timezone), duration, rule, count=count, until=until)


def _schedule(kind: MeetingKind, timezone: str, start: datetime, duration: int, rule: _Rule, *,
              count: int | None = None, until: date | None = None) -> Schedule:
    return Schedule(kind, timezone, start, duration, freq=rule.freq, interval=rule.interval, byday=rule.byday,
                    month_day=rule.month_day, month_week=rule.month_week, month_weekday=rule.month_weekday,
                    count=count, until=until)


def _local(day: date, clock: time, timezone: str) -> datetime:
    return datetime.combine(day, clock, zone(timezone))


def _first_on_or_after(day: date, rule: _Rule) -> date:
    """The first date from `day` on which the rule has an occurrence."""
    if rule.freq == "DAILY":
        return day
    if rule.freq == "WEEKLY":
        wanted = {WEEKDAYS.index(code) for code in rule.byday}
        while day.weekday() not in wanted:
            day += timedelta(days=1)
        return day
    for _ in range(3):
        if rule.month_day is not None:
            candidate = date(day.year, day.month, rule.month_day)
        else:
            assert rule.month_week is not None and rule.month_weekday is not None
            candidate = _nth_weekday(day.year, day.month, rule.month_week, rule.month_weekday)
        if candidate >= day:
            return candidate
        day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    raise AssertionError("a monthly rule always has an occurrence within three months")


def _nth_weekday(year: int, month: int, week: int, weekday: str) -> date:
    target = WEEKDAYS.index(weekday)
    if week > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(target - first.weekday()) % 7 + 7 * (week - 1))
    following = (date(year, month, 1) + timedelta(days=32)).replace(day=1)
    last = following - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - target) % 7)


def _elapsed_upper_bound(first: date, as_of: date, rule: _Rule) -> int:
    """More occurrences than can have happened between `first` and `as_of` (so COUNT leaves some ahead)."""
    days = max(0, (as_of - first).days)
    if rule.freq == "DAILY":
        return days + 1
    if rule.freq == "WEEKLY":
        return (days // (7 * rule.interval) + 1) * len(rule.byday)
    return days // 28 + 1


# ----------------------------------------------------------------------------------------- platform forms

def utc_z(moment: datetime) -> str:
    """2026-09-07T08:00:00Z."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def zoom_recurrence(schedule: Schedule) -> dict[str, object] | None:
    """Zoom's recurrence object (type 1 daily, 2 weekly, 3 monthly; weekly_days 1 = Sunday)."""
    if schedule.freq is None:
        return None
    if schedule.freq == "DAILY":
        body: dict[str, object] = {"type": 1, "repeat_interval": schedule.interval}
    elif schedule.freq == "WEEKLY":
        body = {"type": 2, "repeat_interval": schedule.interval,
                "weekly_days": ",".join(_ZOOM_DAY[d] for d in schedule.byday)}
    elif schedule.month_day is not None:
        body = {"type": 3, "repeat_interval": schedule.interval, "monthly_day": schedule.month_day}
    else:
        assert schedule.month_weekday is not None
        body = {"type": 3, "repeat_interval": schedule.interval, "monthly_week": schedule.month_week,
                "monthly_week_day": int(_ZOOM_DAY[schedule.month_weekday])}
    if schedule.count is not None:
        body["end_times"] = schedule.count
    else:
        until = schedule.until_instant()
        assert until is not None, "Zoom fixed-time series always end"
        body["end_date_time"] = utc_z(until)
    return body


def graph_recurrence(schedule: Schedule, windows_zone: str) -> dict[str, object] | None:
    """Graph's patternedRecurrence, with the unused members filled the way the service fills them."""
    if schedule.freq is None or schedule.start is None:
        return None
    pattern: dict[str, object] = {"type": "daily", "interval": schedule.interval, "month": 0, "dayOfMonth": 0,
                                  "firstDayOfWeek": "monday", "index": "first"}
    if schedule.freq == "WEEKLY":
        pattern |= {"type": "weekly", "daysOfWeek": [_GRAPH_DAY[d] for d in schedule.byday]}
    elif schedule.freq == "MONTHLY" and schedule.month_day is not None:
        pattern |= {"type": "absoluteMonthly", "dayOfMonth": schedule.month_day}
    elif schedule.freq == "MONTHLY":
        assert schedule.month_week is not None and schedule.month_weekday is not None
        pattern |= {"type": "relativeMonthly", "index": _GRAPH_INDEX[schedule.month_week],
                    "daysOfWeek": [_GRAPH_DAY[schedule.month_weekday]]}
    if "daysOfWeek" not in pattern:
        pattern["daysOfWeek"] = []
    start_day = schedule.start.date().isoformat()
    if schedule.until is not None:
        rng_part: dict[str, object] = {"type": "endDate", "startDate": start_day,
                                       "endDate": schedule.until.isoformat(), "numberOfOccurrences": 0}
    elif schedule.count is not None:
        rng_part = {"type": "numbered", "startDate": start_day, "endDate": "0001-01-01",
                    "numberOfOccurrences": schedule.count}
    else:
        rng_part = {"type": "noEnd", "startDate": start_day, "endDate": "0001-01-01", "numberOfOccurrences": 0}
    rng_part["recurrenceTimeZone"] = windows_zone
    return {"pattern": pattern, "range": rng_part}


def webex_rrule(schedule: Schedule) -> str | None:
    """Webex's recurrence: an RRULE without the `RRULE:` prefix, UNTIL in UTC."""
    if schedule.freq is None:
        return None
    parts = [f"FREQ={schedule.freq}", f"INTERVAL={schedule.interval}"]
    if schedule.freq == "WEEKLY":
        parts.append("BYDAY=" + ",".join(schedule.byday))
    elif schedule.month_day is not None:
        parts.append(f"BYMONTHDAY={schedule.month_day}")
    elif schedule.freq == "MONTHLY":
        parts.append(f"BYDAY={schedule.month_week}{schedule.month_weekday}")
    if schedule.count is not None:
        parts.append(f"COUNT={schedule.count}")
    elif schedule.until is not None:
        parts.append("UNTIL=" + schedule.until.strftime("%Y%m%dT235959Z"))
    return ";".join(parts)
