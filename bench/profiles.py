"""Profile summaries for the report: CPU by package and the costliest functions (own time)."""

from __future__ import annotations

import pstats
import re
from collections import Counter

# The first match names the group; order matters (our packages before the libraries they call).
GROUPS = (
    ("services/auth/api/verify.py", "auth /verify endpoint"),
    ("services/auth/tokens.py", "auth tokens (ours)"),
    ("services/", "auth service code"),
    ("shared/", "shared code"),
    ("/jwt/", "PyJWT"),
    ("/cryptography/", "cryptography"),
    ("/pymongo/", "pymongo (store client)"),
    ("/bson/", "bson"),
    ("/email_validator/", "email-validator"),
    ("/aiohttp/", "aiohttp (moderation client)"),
    ("/httpx", "httpx (moderation client)"),
    ("/starlette/", "starlette"),
    ("/uvicorn/", "uvicorn"),
    ("/pydantic", "pydantic"),
    ("/structlog/", "structlog"),
    ("/prometheus_client/", "prometheus-client"),
    ("/asyncio/", "asyncio"),
    ("json/", "json (stdlib)"),
    ("base64", "base64 (stdlib)"),
)


def group_of(filename: str) -> str:
    for needle, name in GROUPS:
        if needle in filename:
            return name
    if filename == "~":
        return "builtins (C)"
    return "other Python"


def by_group(stats: pstats.Stats) -> Counter[str]:
    """Own time per group, in seconds."""
    totals: Counter[str] = Counter()
    for (filename, _line, _name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        totals[group_of(filename)] += own
    return totals


def short(filename: str, line: int, name: str) -> str:
    path = re.sub(r"^.*site-packages/", "", filename)
    path = re.sub(r"^.*/(services|shared|bench)/", r"\1/", path)
    return f"{path}:{line}({name})" if filename != "~" else name


def summary(stats: pstats.Stats, per: int, unit: str, top: int = 12) -> str:
    """Markdown: CPU per `unit` by group, then the top functions by own time."""
    groups = by_group(stats)
    total = sum(groups.values()) or 1.0
    lines = [f"| where (own time) | us per {unit} | share |", "|---|---|---|"]
    for name, seconds in groups.most_common():
        if seconds / total >= 0.01:
            lines.append(f"| {name} | {seconds / per * 1e6:,.1f} | {seconds / total:.0%} |")
    lines += ["", f"| function | calls per {unit} | own us per {unit} |", "|---|---|---|"]
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:top]  # type: ignore[attr-defined]
    for (filename, line, name), (_cc, calls, own, _cum, _callers) in rows:
        lines.append(f"| `{short(filename, line, name)}` | {calls / per:.1f} | {own / per * 1e6:,.1f} |")
    return "\n".join(lines) + "\n"
