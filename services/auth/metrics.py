"""Auth-specific metrics. /verify keeps plain integer counters on its hot path; a
collector turns them into Prometheus counters only when /metrics is scraped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.auth.api.verify import VerifyEndpoint
from services.auth.moderation_client import ModerationClient
from services.auth.revocations import RevocationCache


class _AuthCollector(Collector):
    def __init__(self) -> None:
        self.verify: VerifyEndpoint | None = None
        self.revocations: RevocationCache | None = None
        self.moderation: ModerationClient | None = None

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
        if self.moderation is not None:
            client = self.moderation
            state = GaugeMetricFamily(
                "authgate_moderation_circuit_state", "1 for the breaker's current state", labels=["state"]
            )
            for name in ("closed", "open", "half_open"):
                state.add_metric([name], 1.0 if client.breaker.state == name else 0.0)
            yield state
            reports = CounterMetricFamily(
                "authgate_moderation_reports", "Violation reports by fate", labels=["fate"]
            )
            reports.add_metric(["delivered"], client.stats.delivered)
            reports.add_metric(["dropped"], client.stats.dropped)
            reports.add_metric(["rejected"], client.stats.rejected)
            yield reports
            config_errors = CounterMetricFamily(
                "authgate_moderation_config_errors",
                "Calls moderation refused with 401/403: MODERATION_API_KEY is wrong or lacks a scope",
            )
            config_errors.add_metric([], client.stats.config_errors)
            yield config_errors
            degraded = CounterMetricFamily(
                "authgate_moderation_degraded_answers", "Checks answered locally (fail open)"
            )
            degraded.add_metric([], client.stats.degraded_answers)
            yield degraded
            age = client.ban_cache_age()
            ban_age = GaugeMetricFamily(
                "authgate_ban_cache_age_seconds", "Age of the ban cache (-1: never synced)"
            )
            ban_age.add_metric([], -1.0 if age is None else age)
            yield ban_age


COLLECTOR = _AuthCollector()
REGISTRY.register(COLLECTOR)


def bind(verify: VerifyEndpoint, revocations: RevocationCache, moderation: ModerationClient) -> None:
    """Point the collector at this process's app (the last one created wins)."""
    COLLECTOR.verify = verify
    COLLECTOR.revocations = revocations
    COLLECTOR.moderation = moderation
