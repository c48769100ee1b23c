"""Rate limits as the real services apply them: token buckets per account and label, concurrency gates."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` requests per second with a burst of `burst`; `take` says how long to wait when refused."""

    def __init__(self, rate: float, *, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._clock = clock
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self, cost: float = 1.0) -> float | None:
        """None when the request may go; otherwise the seconds until it could."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= cost:
                self._tokens -= cost
                return None
            return (cost - self._tokens) / self.rate


class RateLimiter:
    """Buckets by key ("zoom:<account>:Medium", "graph:<app>:<tenant>"), created on first use."""

    def __init__(self, rates: dict[str, float], *, enabled: bool = True) -> None:
        self._rates = rates
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self.enabled = enabled

    def take(self, scope: str, label: str, cost: float = 1.0) -> float | None:
        if not self.enabled or label not in self._rates:
            return None
        key = f"{scope}:{label}"
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self._rates[label])
        return bucket.take(cost)


class ConcurrencyGate:
    """At most `limit` requests in flight per key (Outlook: 4 per app and mailbox)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._inflight: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, key: str) -> bool:
        with self._lock:
            count = self._inflight.get(key, 0)
            if count >= self.limit:
                return False
            self._inflight[key] = count + 1
            return True

    def leave(self, key: str) -> None:
        with self._lock:
            self._inflight[key] = max(0, self._inflight.get(key, 1) - 1)
