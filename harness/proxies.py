"""Real reverse proxies in front of the services: nginx (Debian's) from a rendered config."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from harness.processes import Server, start_process


def find_nginx() -> str | None:
    """nginx from PATH, or /usr/sbin (not on every user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def start_nginx(nginx: str, prefix: Path, conf: Path, port: int) -> Server:
    """`nginx -t` must accept `conf`; then nginx runs in the foreground until stopped."""
    base = [nginx, "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30, check=False)
    assert check.returncode == 0, f"nginx -t refused {conf}:\n{check.stderr}"
    return start_process([*base, "-g", "daemon off;"], port, prefix / "nginx.stderr.log")
