"""Pacing calls to a source account's budget: one Throttle abstraction, a local token-bucket implementation.

Keys name a budget: "zoom:<account>:Medium", "graph:<tenant>:mailbox:<id>". In production several workers share
an account: the flows bracket each batch with a Prefect global concurrency limit, and each process paces its own
calls with a LocalThrottle (an acquisition of a Prefect limit costs ~15-60 ms, too much per call).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Throttle(Protocol):
    """Blocks until a call against `key`'s budget may go."""

    def acquire(self, key: str, cost: float = 1.0) -> None: ...


class NoThrottle:
    """No pacing at all (tests that want raw behaviour)."""

    def acquire(self, key: str, cost: float = 1.0) -> None:
        return None


class LocalThrottle:
    """Token buckets per key; the rate comes from the first matching rule (key prefix → requests per second)."""

    def __init__(self, rates: dict[str, float], *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._rates = sorted(rates.items(), key=lambda item: -len(item[0]))
        self._clock = clock
        self._sleep = sleep
        self._state: dict[str, tuple[float, float]] = {}  # key → (tokens, stamp)
        self._lock = threading.Lock()

    def _rate(self, key: str) -> float | None:
        return next((rate for prefix, rate in self._rates if key.startswith(prefix)), None)

    def acquire(self, key: str, cost: float = 1.0) -> None:
        rate = self._rate(key)
        if rate is None:
            return
        while True:
            with self._lock:
                now = self._clock()
                tokens, stamp = self._state.get(key, (max(1.0, rate), now))
                tokens = min(max(1.0, rate), tokens + (now - stamp) * rate)
                if tokens >= cost:
                    self._state[key] = (tokens - cost, now)
                    return
                self._state[key] = (tokens, now)
                wait = (cost - tokens) / rate
            self._sleep(wait)
