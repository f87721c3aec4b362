"""The client's own numbers: call latency and results (Prometheus), and plain counters the
auth collector turns into metrics when /metrics is scraped."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Histogram

LATENCY = Histogram(
    "authgate_moderation_call_duration_seconds",
    "Latency of auth's calls to moderation on the request path",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0),
)
CALLS = Counter("authgate_moderation_calls_total", "Calls to moderation by result", ["result"])


@dataclass
class ClientStats:
    buffered: int = 0
    dropped: int = 0  # reports pushed out of the full buffer
    delivered: int = 0  # reports moderation accepted
    rejected: int = 0  # reports moderation refused (4xx): never delivered, never retried
    degraded_answers: int = 0
    feed_resets: int = 0
    config_errors: int = 0  # answers 401/403: auth's key is wrong or lacks a scope
