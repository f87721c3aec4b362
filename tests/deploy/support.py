"""Shared helpers for the deployment tests: paths, tool lookup, rendering, checkov output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
INSTALL_SCRIPT = REPO / "scripts" / "install_tools.sh"
TOOLS_VENV = Path(os.environ.get("AUTHGATE_TOOLS_VENV", REPO / ".tools-venv"))
# Newest Kubernetes schema set that kubernetes-validate 1.37.0 bundles (offline).
K8S_SCHEMA_VERSION = "1.37.0"


@dataclass(frozen=True)
class Tools:
    kubectl: str
    checkov: str
    kubernetes_validate: str
    nginx: str | None  # None: absent and could not be installed
    install_log: str  # what install_tools.sh printed this session ("" if not run)


def find_kubectl() -> str | None:
    """A kubectl whose `kustomize` works: on PATH first, then the tools venv's."""
    candidates = [TOOLS_VENV / "bin" / "kubectl"]
    found = shutil.which("kubectl")
    if found:
        candidates.insert(0, Path(found))
    for candidate in candidates:
        if candidate.exists() and os.access(candidate, os.X_OK):
            probe = subprocess.run([str(candidate), "kustomize", "--help"], capture_output=True, timeout=60)
            if probe.returncode == 0:
                return str(candidate)
    return None


def tools_venv_ready() -> bool:
    return all(os.access(TOOLS_VENV / "bin" / name, os.X_OK) for name in ("checkov", "kubernetes-validate"))


def kustomize(tools: Tools, path: Path) -> str:
    args = [tools.kubectl, "kustomize", str(path)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return proc.stdout


def load_docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@dataclass(frozen=True)
class Rendered:
    name: str
    path: Path  # the rendered YAML on disk
    docs: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for doc in self.of_kind(kind):
            if doc["metadata"]["name"] == name:
                return doc
        raise AssertionError(f"{self.name}: no {kind} named {name}")


@dataclass(frozen=True)
class CheckovRuns:
    with_config: subprocess.CompletedProcess[str]  # as configured: the documented skips only
    without_skips: subprocess.CompletedProcess[str]  # every check, to prove each skip is needed


def checkov_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:  # pragma: no cover - diagnostic path
        raise AssertionError(f"checkov printed no JSON ({exc}):\n{proc.stdout}\n{proc.stderr}") from exc
    assert isinstance(data, dict), f"expected one framework's report, got: {data!r}"
    return data
