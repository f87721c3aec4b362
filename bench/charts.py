"""PNG charts for the report (matplotlib, Agg backend: no display needed), small enough to commit.

Each function writes one PNG next to the report and returns the Markdown that shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SIZE = (6.4, 3.2)
DPI = 80  # a few tens of KB per chart


def _save(out_dir: Path, name: str, title: str) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    plt.tight_layout()
    plt.savefig(out_dir / name, dpi=DPI)
    plt.close("all")
    return f"![{title}]({name})\n"


def latency_curves(
    out_dir: Path, name: str, title: str, percentiles: Sequence[int], curves: Mapping[str, Sequence[float]]
) -> str:
    """Latency at each percentile, one line per endpoint (baselines dashed)."""
    plt.figure(figsize=SIZE)
    for label, values in curves.items():
        if len(values) != len(percentiles):
            continue
        style = "--" if label.startswith(("raw", "routed")) else "-"
        plt.plot([f"p{p}" for p in percentiles], values, style, marker="o", label=label)
    plt.ylim(bottom=0)
    plt.ylabel("latency (ms)")
    plt.title(title, fontsize=10)
    plt.grid(True, alpha=0.3)
    plt.legend(fontsize=7)
    return _save(out_dir, name, title)


def bars(out_dir: Path, name: str, title: str, values: Mapping[str, float], unit: str) -> str:
    """One bar per figure (throughput beside its ceiling or baseline)."""
    plt.figure(figsize=SIZE)
    labels, heights = list(values), list(values.values())
    drawn = plt.barh(labels, heights, color=["#888888" if i == 0 else "#1f77b4" for i in range(len(labels))])
    plt.bar_label(drawn, labels=[f"{h:,.0f}" for h in heights], fontsize=7, padding=2)
    plt.gca().invert_yaxis()
    plt.xlabel(unit)
    plt.title(title, fontsize=10)
    plt.grid(True, axis="x", alpha=0.3)
    return _save(out_dir, name, title)


def delays(
    out_dir: Path, name: str, title: str, series: Mapping[str, Sequence[float]], bound_ms: float
) -> str:
    """Each round's propagation delay, sorted (an empirical CDF), with the published bound."""
    plt.figure(figsize=SIZE)
    for label, values in series.items():
        ordered = sorted(v * 1000 for v in values)
        if ordered:
            fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
            plt.step(ordered, fractions, where="post", label=f"{label} (n={len(ordered)})")
    plt.axvline(bound_ms, color="red", linestyle=":", label=f"bound {bound_ms:g} ms")
    plt.xlabel("ms from the revoking call until the other process refuses")
    plt.ylabel("fraction of rounds")
    plt.title(title, fontsize=10)
    plt.grid(True, alpha=0.3)
    plt.legend(fontsize=7)
    return _save(out_dir, name, title)
