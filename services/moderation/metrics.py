"""Moderation counters: decisions by event type and bans by kind. No subject ever becomes a label."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import structlog
from prometheus_client import Counter, Gauge

from shared.moderation.hooks import subject_kind

EVENTS = Counter("authgate_moderation_events_total", "Events by type and answer", ["type", "outcome"])
BANS = Counter("authgate_moderation_bans_total", "Bans by subject kind and origin", ["kind", "origin"])
UNBANS = Counter("authgate_moderation_unbans_total", "Lifted bans by subject kind", ["kind"])


LOGIN_RATE = Gauge(
    "authgate_moderation_login_rate_per_minute", "Login events this replica saw in the last minute"
)
LOGIN_ALARM = Gauge(
    "authgate_moderation_login_alarm",
    "1 while this replica's login rate is above LOGIN_ALARM_PER_MINUTE (a distributed attack)",
)
log = structlog.get_logger("authgate.moderation")


class LoginRateAlarm:
    """Logins per minute across all clients: no per-address limit sees an attack spread thin."""

    def __init__(self, threshold_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold_per_minute
        self.clock = clock
        self._seconds: deque[list[int]] = deque()  # [second, count], oldest first
        self._total = 0
        self._raised = False

    def observe(self) -> None:
        second = int(self.clock())
        while self._seconds and self._seconds[0][0] <= second - 60:
            self._total -= self._seconds.popleft()[1]
        if self._seconds and self._seconds[-1][0] == second:
            self._seconds[-1][1] += 1
        else:
            self._seconds.append([second, 1])
        self._total += 1
        LOGIN_RATE.set(self._total)
        raised = self._total > self.threshold
        if raised != self._raised:
            self._raised = raised
            LOGIN_ALARM.set(1 if raised else 0)
            log.warning("login_rate_alarm" if raised else "login_rate_normal", per_minute=self._total)


class PrometheusMetrics:
    """The engine's metrics hook in the moderation service: its counters and the login alarm."""

    def __init__(self, login_alarm_per_minute: int) -> None:
        self.login_alarm = LoginRateAlarm(login_alarm_per_minute)

    def ban(self, subject: str, automatic: bool) -> None:
        BANS.labels(subject_kind(subject), "automatic" if automatic else "manual").inc()

    def unban(self, subject: str) -> None:
        UNBANS.labels(subject_kind(subject)).inc()

    def login(self) -> None:
        self.login_alarm.observe()
