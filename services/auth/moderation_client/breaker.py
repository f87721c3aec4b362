"""The circuit breaker in front of moderation: stop calling a dependency that keeps failing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import structlog

log = structlog.get_logger("authgate.moderation_client")


class CircuitBreaker:
    """Closed → open after `failures` in a row; after `reset_ms` one probe is let through."""

    def __init__(self, failures: int, reset_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.reset_s = reset_ms / 1000
        self.clock = clock
        self._count = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._probing else "open"

    def allow(self) -> bool:
        if self._opened_at is None:
            return True
        if self._probing or self.clock() - self._opened_at < self.reset_s:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        if self._opened_at is not None:
            log.info("moderation_circuit_closed")
        self._count = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        self._count += 1
        if self._probing or (self._opened_at is None and self._count >= self.failures):
            if self._opened_at is None:
                log.warning("moderation_circuit_open", failures=self._count)
            self._opened_at = self.clock()
        self._probing = False
