"""Auth-specific metrics. /verify keeps plain integer counters on its hot path; a
collector turns them into Prometheus counters only when /metrics is scraped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.auth.api.verify import VerifyEndpoint
from services.auth.revocations import RevocationCache

LOGINS = Counter("authgate_logins_total", "Login attempts by outcome", ["outcome"])
REGISTRATIONS = Counter("authgate_registrations_total", "Registration attempts by outcome", ["outcome"])
REFRESHES = Counter("authgate_refreshes_total", "Refresh attempts by outcome", ["outcome"])
REVOCATIONS = Counter("authgate_session_revocations_total", "Revoked sessions by reason", ["reason"])


class _AuthCollector(Collector):
    def __init__(self) -> None:
        self.verify: VerifyEndpoint | None = None
        self.revocations: RevocationCache | None = None

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        if self.verify is not None:
            family = CounterMetricFamily(
                "authgate_verify", "Forward-auth decisions by outcome", labels=["outcome"]
            )
            for outcome, value in asdict(self.verify.counters).items():
                family.add_metric([outcome], value)
            yield family
        if self.revocations is not None:
            staleness = self.revocations.staleness_s()
            gauge = GaugeMetricFamily(
                "authgate_revocation_staleness_seconds",
                "Age of the in-process revocation state (-1: never loaded)",
            )
            gauge.add_metric([], -1.0 if staleness is None else staleness)
            yield gauge
            failures = CounterMetricFamily(
                "authgate_revocation_refresh_failures", "Failed polls of the revocation collection"
            )
            failures.add_metric([], self.revocations.stats.failures)
            yield failures


COLLECTOR = _AuthCollector()
REGISTRY.register(COLLECTOR)


def bind(verify: VerifyEndpoint, revocations: RevocationCache) -> None:
    """Point the collector at this process's app (the last one created wins)."""
    COLLECTOR.verify = verify
    COLLECTOR.revocations = revocations
