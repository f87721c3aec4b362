"""Bench configuration and the settings every measured app shares (uvicorn flags, limits off)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"

# One worker, no access log, warnings only, no proxy headers: the same for every app measured.
UVICORN_FLAGS = (
    "--workers",
    "1",
    "--no-access-log",
    "--log-level",
    "warning",
    "--no-proxy-headers",
    "--no-server-header",
    "--timeout-graceful-shutdown",
    "5",
)
# Moderation's limits must not shape a throughput bench. The per-account and per-device
# limits count failed logins and the configuration caps them at 100 (NIST SP 800-63B),
# so they get that cap; the bench's logins all succeed.
LIMITS_OFF = {
    "LOGIN_MAX": "1000000000",
    "REGISTER_MAX": "1000000000",
    "REFRESH_MAX": "1000000000",
    "LOGIN_ACCOUNT_MAX": "100",
    "LOGIN_DEVICE_MAX": "100",
}


# Configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    quick: bool = False
    rounds: int = 3  # median of 3 alternated runs
    load_s: float = 3.5  # one full-load run (wrk: whole seconds; login, refresh, ceilings)
    warmup_s: float = 1.0
    concurrency: int = 8  # login / refresh / store ceiling
    wrk_threads: int = 1  # two cores here: one for wrk, one for the single uvicorn worker
    wrk_connections: int = 32
    fixed_rate: int = 1000  # req/s
    fixed_s: float = 2.0
    latency_rounds: int = 30  # revocation / ban latency samples
    latency_deadline_s: float = 5.0
    command: str = "python -m bench"
    out_dir: Path = ROOT / "bench" / "results"  # the report and its charts

    @property
    def wrk_s(self) -> int:
        """wrk takes whole seconds."""
        return max(1, int(self.load_s))

    @classmethod
    def make(cls, quick: bool, command: str, out_dir: Path | None = None) -> BenchConfig:
        out = out_dir or ROOT / "bench" / "results"
        if not quick:
            return cls(command=command, out_dir=out)
        return cls(
            quick=True,
            load_s=1.0,
            warmup_s=0.3,
            fixed_s=0.5,
            latency_rounds=6,
            command=command,
            out_dir=out,
        )


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
