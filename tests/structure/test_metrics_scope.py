"""Each service's /metrics shows its own counters: auth's never carries moderation's engine counters."""

from __future__ import annotations

from pathlib import Path

from harness import run_to_exit

ROOT = Path(__file__).resolve().parents[2]
MODERATION_ONLY = (
    "authgate_moderation_bans_total",
    "authgate_moderation_events_total",
    "authgate_moderation_unbans_total",
)


def exported_by(package: str) -> str:
    """The metrics a fresh interpreter holds once it has imported every module of `package`."""
    done = run_to_exit("tests.structure.metrics_probe", {"PROBE_PACKAGE": package}, cwd=ROOT, timeout=120)
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
