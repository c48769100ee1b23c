"""The release policy: only people with enough Visio evidence lose their source licence; every hold has one reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.release_policy import HoldReason, PersonEvidence, ReleasePolicy, decide, visio_days_within
from core.waves import WaveState

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
CUT = NOW - timedelta(days=20)
VERIFIED = NOW - timedelta(days=19)
POLICY = ReleasePolicy()


def ready(**changes: object) -> PersonEvidence:
    """Someone the default policy releases: verified 19 days ago, seen in Visio on 3 recent days."""
    base = PersonEvidence(anchor="a-1", wave_state=WaveState.VERIFIED, cut_over_at=CUT, verified_at=VERIFIED,
                          visio_days=frozenset({date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)}))
    return replace(base, **changes)  # type: ignore[arg-type]


def test_enough_evidence_releases() -> None:
    decision = decide(ready(), POLICY, now=NOW)
    assert decision.releasable and decision.reason is None


@pytest.mark.parametrize(("changes", "reason"), [
    ({"anchor": "kept"}, HoldReason.EXEMPT_LISTED),
    ({"hosts_webinars": True}, HoldReason.EXEMPT_WEBINAR_HOST),
    ({"hosts_large_meetings": True}, HoldReason.EXEMPT_LARGE_MEETINGS),
    ({"wave_state": None}, HoldReason.NOT_IN_WAVE),
    ({"wave_state": WaveState.CUT_OVER, "verified_at": None}, HoldReason.WAVE_NOT_VERIFIED),
    ({"wave_state": WaveState.ROLLED_BACK}, HoldReason.WAVE_NOT_VERIFIED),
    ({"verified_at": NOW - timedelta(days=2)}, HoldReason.IN_GRACE_PERIOD),
    ({"last_hosted_on_source": CUT + timedelta(days=1)}, HoldReason.HOSTS_ON_SOURCE),
    ({"visio_days": frozenset({date(2026, 12, 3), date(2026, 12, 2)})}, HoldReason.NOT_ENOUGH_VISIO_DAYS),
    ({"visio_days": frozenset({date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)})},
     HoldReason.NOT_ENOUGH_VISIO_DAYS),  # seen, but not within the window
])
def test_each_hold_has_its_reason(changes: dict[str, object], reason: HoldReason) -> None:
    policy = ReleasePolicy(exempt_anchors=frozenset({"kept"}))
    decision = decide(ready(**changes), policy, now=NOW)
    assert (decision.releasable, decision.reason) == (False, reason)


def test_hosting_before_the_cutover_does_not_hold() -> None:
    assert decide(ready(last_hosted_on_source=CUT - timedelta(days=3)), POLICY, now=NOW).releasable


def test_exemptions_can_be_switched_off() -> None:
    policy = ReleasePolicy(exempt_webinar_hosts=False, exempt_large_meetings=False)
    assert decide(ready(hosts_webinars=True, hosts_large_meetings=True), policy, now=NOW).releasable


def test_the_first_reason_in_order_is_the_one_reported() -> None:
    decision = decide(ready(hosts_webinars=True, wave_state=None, visio_days=frozenset()), POLICY, now=NOW)
    assert decision.reason is HoldReason.EXEMPT_WEBINAR_HOST


@pytest.mark.parametrize("wrong", [{"min_visio_days": 0}, {"window_days": 2}, {"grace_days": -1}])
def test_a_policy_that_cannot_hold_is_refused(wrong: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(wrong))):
        ReleasePolicy(**wrong)  # type: ignore[arg-type]


@given(st.sets(st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)), max_size=60),
       st.integers(min_value=1, max_value=90))
def test_days_within_the_window_are_distinct_and_bounded(days: set[date], window: int) -> None:
    today = date(2026, 12, 4)
    counted = visio_days_within(days, today=today, window_days=window)
    assert counted <= window
    assert counted == sum(1 for day in days if today - timedelta(days=window - 1) <= day <= today)
    assert visio_days_within(list(days) * 2, today=today, window_days=window) == counted  # a day counts once
