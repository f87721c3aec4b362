"""deploy/Dockerfile, checked statically (no Docker engine runs here).

A small parser is enough: comments, parser directives and backslash continuations
are the only syntax the file uses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from .support import DEPLOY, REPO

DOCKERFILE = DEPLOY / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-case: FROM, RUN, USER, ...
    args: str  # the rest, continuations joined
    line: int  # where it starts


def parse(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue  # blank, comment or parser directive
        if pending and line.startswith("#"):
            continue  # comment lines inside a continuation are dropped, as Docker does
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        pending += line
        keyword, _, args = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        pending = ""
    assert not pending, "dangling line continuation at end of file"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        assert result, f"line {instruction.line}: {instruction.keyword} before the first FROM"
        result[-1].append(instruction)
    return result


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def from_image(instruction: Instruction) -> str:
    words = [w for w in instruction.args.split() if not w.startswith("--")]
    return words[0]


def test_parser_handles_the_syntax_used() -> None:
    parsed = parse("# syntax=docker/dockerfile:1\nFROM a:1.2.3 AS b\nRUN x \\\n  # note\n  && y\nUSER 1\n")
    assert [(i.keyword, i.args) for i in parsed] == [
        ("FROM", "a:1.2.3 AS b"),
        ("RUN", "x && y"),
        ("USER", "1"),
    ]


def test_multi_stage(instructions: list[Instruction]) -> None:
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "builder and runtime stages"
    names = [i.args.split()[-1] for i in froms if " AS " in i.args.upper()]
    assert "builder" in names
    runtime = stages(instructions)[-1]
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert any("--from=builder" in c and "/opt/venv" in c for c in copies), "runtime copies the venv"
    # The runtime stage compiles nothing and carries no build tools or sources.
    assert not any(i.keyword == "RUN" and "pip install" in i.args for i in runtime)


def test_every_base_image_is_pinned(instructions: list[Instruction]) -> None:
    for instruction in (i for i in instructions if i.keyword == "FROM"):
        image = from_image(instruction)
        assert "$" not in image, f"line {instruction.line}: resolve the image statically"
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name, f"line {instruction.line}: {image} has no tag"
        assert tag != "latest"
        patch_version = re.match(r"\d+\.\d+\.\d+(?:-|$)", tag)
        assert patch_version, f"line {instruction.line}: {tag} is not a patch version"
        if "@" in image:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", image.split("@", 1)[1])


def test_final_user_is_not_root(instructions: list[Instruction]) -> None:
    runtime = stages(instructions)[-1]
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit() and int(user) >= 10000, "numeric uid, outside the host's range (runAsUser 10001)"


def test_healthcheck(instructions: list[Instruction]) -> None:
    runtime = stages(instructions)[-1]
    checks = [i for i in runtime if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    args = checks[0].args
    assert not args.upper().startswith("NONE")
    assert "CMD" in args
    assert "python" in args and "/healthz" in args and "3080" in args


def test_starts_the_auth_service_and_ships_the_cli(instructions: list[Instruction]) -> None:
    runtime = stages(instructions)[-1]
    cmd = [i for i in runtime if i.keyword == "CMD"][-1]
    assert json.loads(cmd.args) == ["python", "-m", "services.auth"]
    env = " ".join(i.args for i in runtime if i.keyword == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env, "the `authgate` console script is on PATH"
    builder = stages(instructions)[0]
    builder_runs = " ".join(i.args for i in builder if i.keyword == "RUN")
    assert "pip install -c constraints.txt ." in builder_runs, "locked runtime dependencies"
    assert "/opt/venv/bin/authgate --help" in builder_runs, "the build proves the CLI starts"


def test_dockerignore_keeps_secrets_and_venvs_out() -> None:
    patterns = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".tools-venv", ".env", "data/"} <= patterns
