"""docs/security.md stays true: every checklist item 1-75 has a row, the summary adds up, and
every test it cites exists (a reference followed by "(pending)" may name a test not written yet)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from harness import ROOT

DOC = ROOT / "docs" / "security.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`(\s*\(pending\))?")
ITEM_ROW = re.compile(
    r"^\| (\d+) \| [^|]+ \| (Tested, departure|Tested|Superseded|Not applicable|Partly open)\b"
)
SUMMARY_ROW = re.compile(
    r"^\| (Tested, departure|Tested|Superseded|Not applicable[^|]*|Partly open) \| ([\d, ]+) \| (\d+) \|"
)


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def test_every_cited_test_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = []
    found: dict[Path, set[str]] = {}
    for file_name, function, pending in REFERENCE.findall(text):
        if pending:
            continue
        path = ROOT / file_name
        if path not in found:
            found[path] = defined_tests(path) if path.is_file() else set()
        if function not in found[path]:
            missing.append(f"{file_name}::{function}")
    assert sorted(set(missing)) == []


def test_every_item_has_one_row_and_the_summary_adds_up() -> None:
    rows: dict[int, str] = {}
    summary: dict[str, set[int]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if match := ITEM_ROW.match(line):
            item = int(match.group(1))
            assert item not in rows, f"item {item} has two rows"
            rows[item] = match.group(2)
        elif match := SUMMARY_ROW.match(line):
            items = {int(n) for n in match.group(2).replace(" ", "").split(",") if n}
            assert len(items) == int(match.group(3)), line
            summary[match.group(1).split(" (")[0]] = items
    assert sorted(rows) == list(range(1, 76))
    by_status: dict[str, set[int]] = {}
    for item, status in rows.items():
        by_status.setdefault(status, set()).add(item)
    assert summary == by_status
