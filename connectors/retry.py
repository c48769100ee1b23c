"""The one retry layer: transient failures are retried a bounded number of times, honouring Retry-After.

Built on tenacity. A RateLimited error waits what the service asked for (never more than `max_delay`: a longer
wait — Zoom's daily limit — is given up so the flow can checkpoint and come back later); other transient errors
back off exponentially with jitter. Permanent errors are never retried. Every wait is counted in RetryStats.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_random_exponential,
)

from connectors.errors import RateLimited, TransientConnectorError, Unreachable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: attempts in all, first back-off, longest single wait."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 60.0
    connect_attempts: int = 3     # an Unreachable service: attempts in all (back-off capped at connect_max_delay)
    connect_max_delay: float = 2.0


@dataclass
class RetryStats:
    """What the retry layer went through (429s waited out, errors retried, seconds slept)."""

    counts: Counter[str] = field(default_factory=Counter)
    slept: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, kind: str, delay: float) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.slept += delay

    @property
    def throttled(self) -> int:
        return self.counts["rate_limited"]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: seconds (int or decimal), an HTTP date, or an ISO timestamp."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    moment: datetime | None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _retryable(policy: RetryPolicy) -> Callable[[BaseException], bool]:
    def check(error: BaseException) -> bool:
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return error.retry_after <= policy.max_delay
        return isinstance(error, TransientConnectorError)
    return check


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_random_exponential(multiplier=policy.base_delay, max=policy.max_delay)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(error.retry_after, policy.max_delay)
        if isinstance(error, Unreachable):
            return min(float(backoff(state)), policy.connect_max_delay)
        return float(backoff(state))
    return wait


def _stop(policy: RetryPolicy) -> Callable[[RetryCallState], bool]:
    """At most `attempts`; a service that cannot be connected to at all, at most `connect_attempts`."""
    def stop(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        limit = policy.connect_attempts if isinstance(error, Unreachable) else policy.attempts
        return state.attempt_number >= limit
    return stop


def _before_sleep(stats: RetryStats | None) -> Callable[[RetryCallState], None]:
    def record(state: RetryCallState) -> None:
        if stats is None or state.outcome is None:
            return
        error = state.outcome.exception()
        kind = "rate_limited" if isinstance(error, RateLimited) else "transient"
        stats.record(kind, state.upcoming_sleep)
    return record


def call_with_retries(action: Callable[[], T], policy: RetryPolicy, *, stats: RetryStats | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `action`, retrying transient errors under `policy`; the last error propagates."""
    for attempt in Retrying(stop=_stop(policy), wait=_wait(policy),
                            retry=retry_if_exception(_retryable(policy)), before_sleep=_before_sleep(stats),
                            sleep=sleep, reraise=True):
        with attempt:
            return action()
    raise AssertionError("unreachable: tenacity re-raises the last error")


async def acall_with_retries(action: Callable[[], Awaitable[T]], policy: RetryPolicy, *,
                             stats: RetryStats | None = None) -> T:
    """call_with_retries for coroutines (msgraph-sdk is asynchronous)."""
    async for attempt in AsyncRetrying(stop=_stop(policy), wait=_wait(policy),
                                       retry=retry_if_exception(_retryable(policy)),
                                       before_sleep=_before_sleep(stats), reraise=True):
        with attempt:
            return await action()
    raise AssertionError("unreachable: tenacity re-raises the last error")
