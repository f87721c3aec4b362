"""Result tables: rows with value, baseline, ratio, target and verdict; Markdown rendering."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Tables ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    metric: str
    value: str
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    verdict: str = "-"


@dataclass
class Table:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [row.metric for row in self.rows if row.verdict == "MISSED"]


def number(value: float, digits: int = 1) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def info(metric: str, value: float, unit: str, digits: int = 1) -> Row:
    return Row(metric, f"{number(value, digits)} {unit}")


def compare(
    metric: str,
    value: float,
    baseline: float,
    baseline_name: str,
    unit: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    digits: int = 1,
) -> Row:
    """A row with value, baseline, their ratio and the verdict against the target ratio."""
    ratio = value / baseline if baseline and not math.isnan(baseline) else math.nan
    if at_least is not None:
        target, passed = f">= {at_least:g}x", ratio >= at_least
    elif at_most is not None:
        target, passed = f"<= {at_most:g}x", ratio <= at_most
    else:
        target, passed = "-", None
    verdict = "-" if passed is None else ("met" if passed and not math.isnan(ratio) else "MISSED")
    return Row(
        metric,
        f"{number(value, digits)} {unit}",
        f"{number(baseline, digits)} {unit} ({baseline_name})",
        "n/a" if math.isnan(ratio) else f"{ratio:.2f}x",
        target,
        verdict,
    )


def bound(metric: str, value_ms: float, limit_ms: float) -> Row:
    """An absolute latency target (no baseline)."""
    passed = not math.isnan(value_ms) and value_ms <= limit_ms
    return Row(
        metric, f"{number(value_ms)} ms", "-", "-", f"<= {limit_ms:g} ms", "met" if passed else "MISSED"
    )


def render(table: Table) -> str:
    lines = [f"## {table.title}", ""]
    lines += [f"    {command}" for command in table.commands]
    if table.commands:
        lines.append("")
    lines += ["| metric | value | baseline | ratio | target | met? |", "|---|---|---|---|---|---|"]
    for row in table.rows:
        lines.append(
            f"| {row.metric} | {row.value} | {row.baseline} | {row.ratio} | {row.target} | {row.verdict} |"
        )
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"
