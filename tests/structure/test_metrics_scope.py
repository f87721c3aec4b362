"""Each service's /metrics shows its own counters: auth's never carries moderation's engine counters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODERATION_ONLY = (
    "authgate_moderation_bans_total",
    "authgate_moderation_events_total",
    "authgate_moderation_unbans_total",
)
# A fresh interpreter: what this test process imported must not decide the answer.
PROBE = """
import importlib, pkgutil, services.auth
for m in pkgutil.walk_packages(services.auth.__path__, "services.auth."):
    importlib.import_module(m.name)
from prometheus_client import REGISTRY, generate_latest
print(generate_latest(REGISTRY).decode())
"""


def exported_by(package: str) -> str:
    probe = PROBE.replace("services.auth", package)
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_auth_metrics_carry_no_moderation_engine_counters() -> None:
    text = exported_by("services.auth")
    assert "authgate_moderation_call_duration_seconds" in text  # the probe did load auth's metrics
    for name in MODERATION_ONLY:
        assert name.removesuffix("_total") not in text, name


def test_moderation_metrics_keep_their_counters() -> None:
    text = exported_by("services.moderation")
    for name in MODERATION_ONLY:
        assert name.removesuffix("_total") in text, name
