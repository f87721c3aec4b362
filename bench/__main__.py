"""`python -m bench [--quick] [--only auth|verify|moderation]`: run the benches, print and save the tables.

Benches run one after another (never two at once: they share two cores); each
starts and stops its own processes. The combined report and its PNG charts go
to `docs/bench/` (`--quick`: `bench/results/`, git-ignored). Exit status: 0 when
every selected bench ran (missed targets are MISSED rows, not an error), 1 when
one crashed or could not be imported (never "skipped").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import platform
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from bench.config import ROOT, BenchConfig, say
from bench.procs import stop_all_processes
from bench.stats import NoiseWatch
from bench.tables import Row, Table, render

# A full run writes the committed report (the README's table and charts come from it);
# --quick writes next to the code, git-ignored, so a quick run never replaces the report.
FULL_OUT = ROOT / "docs" / "bench"
QUICK_OUT = ROOT / "bench" / "results"
REPORT = "report.md"
BENCHES = (
    ("auth", "bench.bench_auth"),
    ("verify", "bench.bench_verify"),
    ("moderation", "bench.bench_moderation"),
    ("load", "bench.bench_load"),
)


@dataclass
class Outcome:
    name: str
    sections: list[str]
    failed_targets: list[str]
    crashed: bool = False
    targets: list[Row] = field(default_factory=list)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs; every target row is kept")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"report directory (default: {FULL_OUT.relative_to(ROOT)}, --quick: "
        f"{QUICK_OUT.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[name for name, _ in BENCHES],
        help="run only this bench (repeatable)",
    )
    return parser.parse_args(argv)


def command_line(argv: list[str]) -> str:
    python = Path(sys.executable)
    with_root = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    return shlex.join([str(with_root), "-m", "bench", *argv])


def load(module_name: str) -> tuple[ModuleType | None, str]:
    """The bench module, or None and the traceback: a part that cannot even import fails the run."""
    try:
        return importlib.import_module(module_name), ""
    except Exception:
        return None, traceback.format_exc()


def as_sections(result: Any) -> tuple[list[str], list[str], list[Row]]:
    """Accept a Table, a list of Tables or markdown text from a bench's `run`; also the target rows."""
    items = result if isinstance(result, list | tuple) else [result]
    sections: list[str] = []
    failed: list[str] = []
    targets: list[Row] = []
    for item in items:
        if isinstance(item, Table):
            sections.append(render(item))
            failed += [f"{item.title} — {metric}" for metric in item.failed]
            targets += [row for row in item.rows if row.target != "-"]
        elif item is not None:
            sections.append(str(item).rstrip() + "\n")
    return sections, failed, targets


def run_module(module: ModuleType, config: BenchConfig) -> Any:
    runner: Callable[..., Any] | None = getattr(module, "run", None)
    if runner is None:
        raise RuntimeError(f"{module.__name__} has no run(config)")
    if inspect.iscoroutinefunction(runner):
        return _run_async(runner(config))
    result = runner(config)
    return _run_async(result) if inspect.isawaitable(result) else result


def _run_async(awaitable: Any) -> Any:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(awaitable)


def run_bench(name: str, module_name: str, config: BenchConfig) -> Outcome:
    module, error = load(module_name)
    if module is None:
        print(error, file=sys.stderr)
        text = f"## {name}\n\n{name} bench could not be imported (the run fails):\n\n```\n{error}```\n"
        return Outcome(name, [text], [], crashed=True)
    started = time.monotonic()
    say(f"== {name} bench ({module_name}) ==")
    watch = NoiseWatch()
    try:
        sections, failed, targets = as_sections(run_module(module, config))
    except KeyboardInterrupt:
        raise
    except Exception:
        text = traceback.format_exc()
        print(text, file=sys.stderr)
        return Outcome(name, [f"## {name}\n\n{name} bench crashed:\n\n```\n{text}```\n"], [], crashed=True)
    finally:
        stop_all_processes()
    noise = watch.stop()
    elapsed = time.monotonic() - started
    say(f"{name} bench took {elapsed:.0f}s; {noise}")
    sections.append(f"_{name} bench: {elapsed:.0f} s; {noise}._\n")
    return Outcome(name, sections, failed, targets=targets)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip() or "?"
    return (
        f"{cpu}, {cores} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def load_average() -> str:
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


def summary(outcomes: list[Outcome]) -> list[str]:
    """Every target row of the run in one table (the README shows this one)."""
    lines = ["## Targets", "", "| bench | metric | value | baseline | ratio | target | met? |"]
    lines.append("|---|---|---|---|---|---|---|")
    for outcome in outcomes:
        for row in outcome.targets:
            verdict = "**MISSED**" if row.verdict == "MISSED" else row.verdict
            lines.append(
                f"| {outcome.name} | {row.metric} | {row.value} | {row.baseline} | {row.ratio}"
                f" | {row.target} | {verdict} |"
            )
    return [*lines, ""]


def report(outcomes: list[Outcome], command: str, elapsed_s: float, load_before: str) -> str:
    failed = [metric for outcome in outcomes for metric in outcome.failed_targets]
    head = [
        "# authgate benchmark",
        "",
        f"- command: `{command}` (`make bench` runs `.venv/bin/python -m bench`)",
        f"- when: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, took {elapsed_s:.0f} s",
        f"- machine: {machine()}",
        f"- load average (1/5/15 min): {load_before} at the start, {load_average()} at the end",
        "- loopback only (127.0.0.1); one uvicorn worker per app, identical uvicorn flags for every app",
        f"- targets missed: {len(failed) or 'none'}",
        *[f"  - {metric}" for metric in failed],
        "",
        *summary(outcomes),
    ]
    return "\n".join(head) + "\n" + "\n".join(s for o in outcomes for s in o.sections)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = command_line(argv)
    out_dir = args.out or (QUICK_OUT if args.quick else FULL_OUT)
    config = BenchConfig.make(args.quick, command, out_dir.resolve())
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    load_before = load_average()
    outcomes: list[Outcome] = []
    try:
        for name, module_name in BENCHES:
            if args.only and name not in args.only:
                continue
            outcome = run_bench(name, module_name, config)
            outcomes.append(outcome)
            for section in outcome.sections:
                print(section, flush=True)
    except KeyboardInterrupt:
        say("interrupted: stopping every process the bench started")
        return 130
    finally:
        stop_all_processes()
    text = report(outcomes, command, time.monotonic() - started, load_before)
    report_path = config.out_dir / REPORT
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(text)
    say(f"report written to {report_path}")
    return 1 if any(outcome.crashed for outcome in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
