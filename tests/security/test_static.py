"""Checks over the source tree and the installed packages (checklist items 4, 33, 54, 72, 75).

Nothing here starts a server: these are the lint-style guarantees the checklist
asks for, read from the code itself (AST, not regexes over text where it matters).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ROOT
from shared.config import PUBLISHED_EXAMPLE_SECRETS

SERVICE_DIRS = ("services", "shared")
PYTHON_DIRS = ("services", "shared", "tests", "scripts", "bench")


def python_files(*dirs: str) -> Iterator[Path]:
    for name in dirs:
        base = ROOT / name
        if base.is_dir():
            yield from (p for p in sorted(base.rglob("*.py")) if "__pycache__" not in p.parts)


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"


# Item 33: a maintained JOSE library, never python-jose ----------------------------------------


def test_no_module_imports_jose() -> None:
    offenders = []
    for path in python_files(*PYTHON_DIRS):
        for node in ast.walk(parsed(path)):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(name == "jose" or name.startswith("jose.") for name in names):
                offenders.append(where(path, node))
    assert offenders == []


def test_python_jose_and_its_ecdsa_are_not_installed() -> None:
    for distribution in ("python-jose", "python-jose-cryptodome", "ecdsa"):
        with pytest.raises(importlib.metadata.PackageNotFoundError):
            importlib.metadata.distribution(distribution)
    assert importlib.util.find_spec("jose") is None


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def test_pyjwt_is_at_least_2_13() -> None:
    """2.13.0 fixed CVE-2026-48526 (JWK/HMAC confusion); 2.10.1 the partial-issuer match."""
    installed = importlib.metadata.version("PyJWT")
    assert _release(installed) >= (2, 13, 0), installed
    locked = _locked_versions()
    assert _release(locked["pyjwt"]) >= (2, 13, 0), locked["pyjwt"]


# Item 75: pinned runtime dependencies and an audit gate ------------------------------------------


def _locked_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"requirements.lock: {line!r} is not pinned with =="
        versions[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version
    return versions


def test_lock_file_pins_every_runtime_dependency_and_no_known_bad_package() -> None:
    locked = _locked_versions()
    for needed in ("pyjwt", "argon2-cffi", "pymongo", "starlette", "uvicorn", "cryptography"):
        assert needed in locked, needed
    assert not {"python-jose", "ecdsa", "pycrypto"} & set(locked)


def test_make_audit_fails_on_unauditable_packages() -> None:
    """`make audit` runs pip-audit over the lock file with --strict (no false green when it cannot audit)."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^audit:.*\n((?:\t.*\n?)+)", makefile, re.MULTILINE)
    assert recipe is not None, "no `audit` target in the Makefile"
    commands = recipe.group(1)
    assert "pip-audit" in commands
    assert "--strict" in commands
    assert "requirements.lock" in commands


def test_the_sbom_lists_every_locked_dependency_at_its_pinned_version(tmp_path: Path) -> None:
    """`make sbom`'s command, run offline: a CycloneDX document with one component per lock entry."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^sbom:.*\n((?:\t.*\n?)+)", makefile, re.MULTILINE)
    assert recipe is not None and "requirements.lock" in recipe.group(1), "no `sbom` target over the lock"
    out = tmp_path / "sbom.cdx.json"
    tool = Path(sys.executable).with_name("cyclonedx-py")
    command = [str(tool), "requirements", "requirements.lock", "--pyproject", "pyproject.toml"]
    subprocess.run(
        [*command, "--of", "JSON", "--output-reproducible", "-o", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["metadata"]["component"]["name"] == "authgate"
    listed = {re.sub(r"[-_.]+", "-", c["name"]).lower(): c["version"] for c in bom["components"]}
    assert listed == _locked_versions()


# Item 54: no server-side code execution, no query operators that run code ---------------------------

FORBIDDEN_OPERATORS = ("$where", "$function", "$accumulator", "$expr")
FORBIDDEN_BUILTINS = {"eval", "exec"}


def test_service_code_never_evaluates_code_or_uses_code_operators() -> None:
    offenders = []
    for path in python_files(*SERVICE_DIRS):
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if any(op in node.value for op in FORBIDDEN_OPERATORS):
                    offenders.append(f"{where(path, node)}: {node.value!r}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in FORBIDDEN_BUILTINS
            ):
                offenders.append(f"{where(path, node)}: {node.func.id}()")
    assert offenders == []


# Item 4: a stored password hash is only ever checked by the hashing library -----------------------

HASH_NAMES = {"stored", "stored_hash", "password_hash", "hashed_password", "new_hash"}


def _is_stored_hash(node: ast.AST) -> bool:
    """`doc["password"]`, `user.get("password")` or a variable named like a stored hash."""
    if isinstance(node, ast.Subscript):
        key = node.slice
        return isinstance(key, ast.Constant) and key.value == "password"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "password"
    if isinstance(node, ast.Name):
        return node.id in HASH_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in HASH_NAMES
    return False


def test_no_equality_comparison_against_a_stored_password_hash() -> None:
    offenders = []
    for path in python_files(*SERVICE_DIRS):
        for node in ast.walk(parsed(path)):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq | ast.Is | ast.IsNot) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            constants_only = all(
                isinstance(o, ast.Constant) and o.value is None for o in operands if not _is_stored_hash(o)
            )
            if any(_is_stored_hash(o) for o in operands) and not constants_only:
                offenders.append(where(path, node))
    assert offenders == [], "compare stored hashes only through argon2/bcrypt verify"


# Item 72: no secret in the repository ------------------------------------------------------------

PRIVATE_KEY_BLOCK = re.compile(b"-----BEGIN (?:[A-Z0-9]+ )*" + b"PRIVATE" + b" KEY-----")
# The refusal list must name the published values; nothing else may carry them.
SEED_SECRET_HOME = Path("shared/config.py")


def repository_files() -> list[Path]:
    """Files git tracks, plus new ones it does not ignore (they are about to be committed)."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    files = [Path(name) for name in listed.decode().split("\0") if name]
    return [f for f in files if (ROOT / f).is_file()]


def test_no_private_key_or_published_example_secret_is_committed() -> None:
    files = repository_files()
    assert files, "git listed no files"
    keys, examples = [], []
    for relative in files:
        data = (ROOT / relative).read_bytes()
        if PRIVATE_KEY_BLOCK.search(data):
            keys.append(str(relative))
        lowered = data.lower()
        if relative != SEED_SECRET_HOME and any(s.encode() in lowered for s in PUBLISHED_EXAMPLE_SECRETS):
            examples.append(str(relative))
    assert keys == [], "private keys in the repository"
    assert examples == [], "the seed's example JWT secrets outside the refusal list"


def test_env_example_leaves_every_secret_empty() -> None:
    secret_names = re.compile(r"^(?P<name>[A-Z0-9_]*(?:SECRET|_KEY|_KEYS|_PASSWORD))=(?P<value>.*)$")
    filled = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = secret_names.match(line.strip())
        if match and match.group("value").strip():
            filled.append(match.group("name"))
    assert filled == []
