"""Fault injection: throttling, server errors, timeouts and truncated bodies at configurable rates.

Decisions come from a seeded generator in request order, so a failing run can be replayed; `inject` queues faults
for the next requests, whatever the rates (a test then says exactly which request fails and how). Faults apply to
the API routes of each system, never to the sandbox's own control routes.

An injected timeout is what a client sees when a server hangs: the request is read, then no answer comes until the
client gives up (its own timeout fires and it closes the connection) — at most `timeout_cap_seconds`, after which
the answer comes late. Either way the request is then processed, as a real server that was only slow would: a POST
whose client timed out may still have been executed. `timeout_seconds` replaces the hold with a fixed delay before
a normal answer (for a test that needs an answer that is slow but arrives).
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, replace
from enum import StrEnum


class Fault(StrEnum):
    """What goes wrong with one request."""

    THROTTLE = "throttle"          # 429 with Retry-After
    SERVER_ERROR = "server_error"  # 500 or 503
    TIMEOUT = "timeout"            # no answer before the client gives up
    TRUNCATE = "truncate"          # a 200 whose body stops halfway


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probability of each fault per API request, and how an injected timeout behaves."""

    throttle: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    truncate: float = 0.0
    retry_after_seconds: int = 1
    timeout_seconds: float | None = None   # None: hold until the client gives up; else a fixed delay, then answer
    timeout_cap_seconds: float = 120.0     # the longest a held request waits for its client to give up
    seed: int = 0

    def __post_init__(self) -> None:
        if self.timeout_seconds is not None and self.timeout_seconds < 0:
            raise ValueError("timeout_seconds must not be negative")
        if self.timeout_cap_seconds <= 0:
            raise ValueError("timeout_cap_seconds must be positive")

    def total(self) -> float:
        return self.throttle + self.server_error + self.timeout + self.truncate


class FaultInjector:
    """Draws a fault (or none) for each request; counts what it injected."""

    def __init__(self, rates: FaultRates | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(rates or FaultRates())

    def configure(self, rates: FaultRates) -> None:
        """New rates: the generator restarts from their seed, counts and queued faults are cleared."""
        with self._lock:
            self.rates = rates
            self._random = random.Random(rates.seed)
            self._queued: deque[Fault] = deque()
            self.injected: dict[str, int] = {fault.value: 0 for fault in Fault}

    def update(self, **changes: float | int | None) -> FaultRates:
        self.configure(replace(self.rates, **changes))  # type: ignore[arg-type]
        return self.rates

    def inject(self, *faults: Fault) -> None:
        """The next API requests get these faults, one each, in order (before any rate is drawn again)."""
        with self._lock:
            self._queued.extend(faults)

    def draw(self) -> Fault | None:
        with self._lock:
            if self._queued:
                fault = self._queued.popleft()
                self.injected[fault.value] += 1
                return fault
            rates = self.rates
            if rates.total() <= 0:
                return None
            roll = self._random.random()
            for fault, rate in ((Fault.THROTTLE, rates.throttle), (Fault.SERVER_ERROR, rates.server_error),
                                (Fault.TIMEOUT, rates.timeout), (Fault.TRUNCATE, rates.truncate)):
                if roll < rate:
                    self.injected[fault.value] += 1
                    return fault
                roll -= rate
            return None
