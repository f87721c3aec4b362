"""The rendered manifests against the Kubernetes schemas (kubernetes-validate) and checkov."""

from __future__ import annotations

import re
import subprocess

import yaml

from .support import (
    K8S,
    K8S_SCHEMA_VERSION,
    CheckovRuns,
    Rendered,
    Tools,
    checkov_json,
)

IMAGE = "ghcr.io/authgate/authgate:0.1.0"
SECRET_DIR = "/run/secrets/authgate"


# ---- kubernetes-validate and checkov -----------------------------------------------


def test_kubernetes_validate_strict(
    tools: Tools, base: Rendered, dev: Rendered, redis_cluster_render: Rendered
) -> None:
    proc = subprocess.run(
        [
            tools.kubernetes_validate,
            "--strict",
            "--kubernetes-version",
            K8S_SCHEMA_VERSION,
            str(base.path),
            str(dev.path),
            str(redis_cluster_render.path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "ERROR" not in output
    validated = output.count("passed for resource")
    assert validated == len(base.docs) + len(dev.docs) + len(redis_cluster_render.docs), output


def documented_skips() -> list[str]:
    """Check ids in the skip table of deploy/k8s/README.md ("| `CKV_...` | reason |")."""
    text = (K8S / "README.md").read_text()
    section = text.split("### checkov skips", 1)[1]
    rows = re.findall(r"^\|\s*`?(CKV2?_[A-Z0-9_]+)`?\s*\|\s*(.+?)\s*\|\s*$", section, re.M)
    for check, reason in rows:
        assert len(reason) > 20, f"{check}: give the reason"
    return [check for check, _ in rows]


def configured_skips() -> list[str]:
    config = yaml.safe_load((K8S / ".checkov.yaml").read_text())
    skips = config["skip-check"]
    return skips if isinstance(skips, list) else [s.strip() for s in skips.split(",")]


def test_checkov_skips_are_documented() -> None:
    skips = configured_skips()
    assert skips, "no skips at all would make this test pointless: keep the table in sync"
    assert sorted(skips) == sorted(documented_skips())
    assert len(set(skips)) == len(skips)


def test_checkov_passes_with_documented_skips_only(checkov_runs: CheckovRuns) -> None:
    proc = checkov_runs.with_config
    report = checkov_json(proc)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert proc.returncode == 0, f"checkov failed: {failed}\n{proc.stderr[-2000:]}"
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100, "checkov ran the Kubernetes checks"
    assert summary["resource_count"] > 0


def test_checkov_skips_are_still_needed(checkov_runs: CheckovRuns) -> None:
    """Without its skip, each skipped check fails, and nothing else does."""
    report = checkov_json(checkov_runs.without_skips)
    failing = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert failing == set(configured_skips())
