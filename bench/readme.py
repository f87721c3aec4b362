"""Copy the full run's header and targets table from docs/bench/report.md into the README.

    .venv/bin/python -m bench.readme

The README's benchmark table is that report's, verbatim, between two markers; nothing is
typed by hand. Refuses a `--quick` report (the README's table comes from a full run).
"""

from __future__ import annotations

import sys

from bench.config import ROOT

REPORT = ROOT / "docs" / "bench" / "report.md"
README = ROOT / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def extract(report: str) -> str:
    """The run's facts (command, date, machine, load) and its targets table."""
    lines = report.splitlines()
    facts = [line for line in lines if line.startswith(("- command:", "- when:", "- machine:", "- load "))]
    start = lines.index("## Targets") + 2
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return "\n".join([*facts, "", *lines[start:end]])


def main() -> int:
    report = REPORT.read_text()
    if "--quick" in report.split("\n", 3)[2]:
        print("docs/bench/report.md comes from a --quick run: run the full bench first", file=sys.stderr)
        return 1
    readme = README.read_text()
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{extract(report)}\n{END}{tail}")
    print("README.md: benchmark table replaced from docs/bench/report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
