"""Fault injection: throttling, server errors, timeouts and truncated bodies at configurable rates.

Decisions come from a seeded generator in request order, so a failing run can be replayed. Faults apply to the
API routes of each system, never to the sandbox's own control routes.
"""

from __future__ import annotations

import random
import threading
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
    """Probability of each fault per API request."""

    throttle: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    truncate: float = 0.0
    retry_after_seconds: int = 1
    timeout_seconds: float = 5.0
    seed: int = 0

    def total(self) -> float:
        return self.throttle + self.server_error + self.timeout + self.truncate


class FaultInjector:
    """Draws a fault (or none) for each request; counts what it injected."""

    def __init__(self, rates: FaultRates | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(rates or FaultRates())

    def configure(self, rates: FaultRates) -> None:
        with self._lock:
            self.rates = rates
            self._random = random.Random(rates.seed)
            self.injected: dict[str, int] = {fault.value: 0 for fault in Fault}

    def update(self, **changes: float | int) -> FaultRates:
        self.configure(replace(self.rates, **changes))  # type: ignore[arg-type]
        return self.rates

    def draw(self) -> Fault | None:
        with self._lock:
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
