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


def find_caddy() -> str | None:
    """Debian's caddy (the tools script installs it) from PATH or /usr/bin."""
    found = shutil.which("caddy") or shutil.which("caddy", path="/usr/bin:/usr/local/bin")
    return found


def render_template(template: Path, values: dict[str, str], dest: Path) -> Path:
    """`template` with each `@NAME@` placeholder filled; fails when one is missing or left over."""
    text = template.read_text()
    for placeholder, value in values.items():
        assert placeholder in text, f"{template} lacks the placeholder {placeholder}"
        text = text.replace(placeholder, value)
    leftover = [word for word in text.split() if word.count("@") >= 2]
    assert not leftover, f"unfilled placeholders in {template}: {leftover}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    return dest


def start_caddy(caddy: str, workdir: Path, caddyfile: Path, port: int, env: dict[str, str]) -> Server:
    """`caddy run` on `caddyfile` (its `{$NAME}` values from `env`), waited for on `port`.

    Caddy keeps its state (certificates, autosave.json) under XDG_DATA_HOME/XDG_CONFIG_HOME:
    both point into `workdir`, so nothing is written to the user's home. `caddy validate` first,
    so a broken example fails with Caddy's own message.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "XDG_DATA_HOME": str(workdir / "data"),
        "XDG_CONFIG_HOME": str(workdir / "config"),
        **env,
    }
    base = ["--config", str(caddyfile), "--adapter", "caddyfile"]
    check = subprocess.run(
        [caddy, "validate", *base], capture_output=True, text=True, timeout=30, check=False, env=full
    )
    assert check.returncode == 0, f"caddy validate refused {caddyfile}:\n{check.stderr}"
    return start_process([caddy, "run", *base], port, workdir / "caddy.log", env=full, cwd=workdir)
