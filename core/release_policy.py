"""When a person's source licence may go: the tenant's release policy applied to what bascule knows of them.

Releasing is gated on adoption (issue 12): a licence goes only when the person's wave was cut over and verified,
they were seen in Visio on enough distinct days lately, they have hosted nothing on the old platform since the
cutover, the grace period after verification has passed, and no exemption keeps the licence (webinar hosts, hosts
of meetings over 150 invitees, people the ministry listed). Each person held is held for one reason, the first of
`HoldReason` in its declared order that applies, so that the plan's counts add up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from core.waves import WaveState

__all__ = ["VISIO_DAY_ZONE", "HoldReason", "PersonEvidence", "ReleaseDecision", "ReleasePolicy", "ReleaseState",
           "decide"]


VISIO_DAY_ZONE = ZoneInfo("Europe/Paris")   # a day in Visio is a day of the agents' calendar, not a UTC day


class HoldReason(StrEnum):
    """Why a licence stays, in the order they are checked (the first that applies is the one reported)."""

    EXEMPT_LISTED = "EXEMPT_LISTED"                  # on the ministry's list of people who keep their licence
    EXEMPT_WEBINAR_HOST = "EXEMPT_WEBINAR_HOST"      # hosts webinars: Visio has no webinar mode
    EXEMPT_LARGE_MEETINGS = "EXEMPT_LARGE_MEETINGS"  # hosts meetings over 150 invitees
    NOT_IN_WAVE = "NOT_IN_WAVE"                      # in no wave yet
    WAVE_NOT_VERIFIED = "WAVE_NOT_VERIFIED"          # the wave is not cut over and verified (or was rolled back)
    IN_GRACE_PERIOD = "IN_GRACE_PERIOD"              # verified less than the grace period ago
    HOSTS_ON_SOURCE = "HOSTS_ON_SOURCE"              # hosted a meeting on the old platform since the cutover
    NOT_ENOUGH_VISIO_DAYS = "NOT_ENOUGH_VISIO_DAYS"  # seen in Visio on too few distinct days within the window
    # Licence-level (the person is releasable, this licence is not a seat to free):
    SUITE_SKU = "SUITE_SKU"                          # Teams inside a suite (mail, files): removing it saves nothing
    GROUP_INHERITED = "GROUP_INHERITED"              # Graph: assigned by a group; the ministry removes them from it
    REFUSED_AT_SOURCE = "REFUSED_AT_SOURCE"          # the source refused the release (the detail says why)
    RESTORED = "RESTORED"                            # given back by `licences restore`: not released again


class ReleaseState(StrEnum):
    """Where one licence's release is (the outbox row `decommission.state`)."""

    PLANNED = "planned"                  # releasable at the last plan, not sent yet
    CLAIMED = "claimed"                  # a run took it; after a kill the next run re-reads the source first
    RELEASED = "released"                # the source, read back, shows the seat free
    REFUSED = "refused"                  # a documented refusal (reason); not retried until the plan says so again
    FAILED = "failed"                    # a transient failure; the next run tries again
    RESTORE_PENDING = "restore_pending"  # a restore was asked for
    RESTORING = "restoring"              # a run took the restore
    RESTORED = "restored"                # the source, read back, shows the same SKU granted again
    RESTORE_FAILED = "restore_failed"    # the source refused to grant it again (reason)


@dataclass(frozen=True, slots=True)
class ReleasePolicy:
    """The tenant's rules (defaults: 3 distinct days in Visio within 30 days, 7 days of grace, both exemptions)."""

    min_visio_days: int = 3
    window_days: int = 30
    grace_days: int = 7
    exempt_webinar_hosts: bool = True
    exempt_large_meetings: bool = True
    exempt_anchors: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.min_visio_days < 1:
            raise ValueError("min_visio_days must be at least 1")
        if self.window_days < self.min_visio_days:
            raise ValueError("window_days must be at least min_visio_days (a day counts once)")
        if self.grace_days < 0:
            raise ValueError("grace_days must not be negative")


@dataclass(frozen=True, slots=True)
class PersonEvidence:
    """What bascule knows of one person when the release plan is computed."""

    anchor: str
    wave_state: WaveState | None = None
    cut_over_at: datetime | None = None
    verified_at: datetime | None = None
    visio_days: frozenset[date] = frozenset()        # distinct days seen in Visio (webhooks or polling)
    last_hosted_on_source: datetime | None = None    # the last meeting they hosted on the old platform
    hosts_webinars: bool = False
    hosts_large_meetings: bool = False


@dataclass(frozen=True, slots=True)
class ReleaseDecision:
    """Releasable, or held with one reason (and the figure behind it, for the plan's detail)."""

    anchor: str
    releasable: bool
    reason: HoldReason | None = None
    detail: str | None = None


def visio_days_within(days: Iterable[date], *, today: date, window_days: int) -> int:
    """Distinct days in the `window_days` ending today (today included)."""
    start = today - timedelta(days=window_days - 1)
    return len({day for day in days if start <= day <= today})


def decide(evidence: PersonEvidence, policy: ReleasePolicy, *, now: datetime) -> ReleaseDecision:
    """The policy applied to one person at `now`."""
    def held(reason: HoldReason, detail: str | None = None) -> ReleaseDecision:
        return ReleaseDecision(evidence.anchor, releasable=False, reason=reason, detail=detail)

    if evidence.anchor in policy.exempt_anchors:
        return held(HoldReason.EXEMPT_LISTED)
    if policy.exempt_webinar_hosts and evidence.hosts_webinars:
        return held(HoldReason.EXEMPT_WEBINAR_HOST)
    if policy.exempt_large_meetings and evidence.hosts_large_meetings:
        return held(HoldReason.EXEMPT_LARGE_MEETINGS)
    if evidence.wave_state is None:
        return held(HoldReason.NOT_IN_WAVE)
    if evidence.wave_state is not WaveState.VERIFIED or evidence.verified_at is None:
        return held(HoldReason.WAVE_NOT_VERIFIED, f"wave {evidence.wave_state}")
    release_from = evidence.verified_at + timedelta(days=policy.grace_days)
    if now < release_from:
        return held(HoldReason.IN_GRACE_PERIOD, f"releasable from {release_from.date().isoformat()}")
    cut_over = evidence.cut_over_at or evidence.verified_at
    if evidence.last_hosted_on_source is not None and evidence.last_hosted_on_source >= cut_over:
        return held(HoldReason.HOSTS_ON_SOURCE, f"hosted on {evidence.last_hosted_on_source.date().isoformat()}")
    seen = visio_days_within(evidence.visio_days, today=now.date(), window_days=policy.window_days)
    if seen < policy.min_visio_days:
        return held(HoldReason.NOT_ENOUGH_VISIO_DAYS,
                    f"{seen} of {policy.min_visio_days} days in Visio within {policy.window_days} days")
    return ReleaseDecision(evidence.anchor, releasable=True)
