"""Optional breached-password check: a k-anonymity range query (Have I Been Pwned's API shape).

Only the first five hex digits of the password's SHA-1 leave the process; the service answers
every `SUFFIX:COUNT` in that range and the match is made here. The check fails open (a breach
service outage must not stop registrations): a failure counts in a metric and logs a warning.
"""

from __future__ import annotations

import hashlib

import httpx
import structlog

from services.auth.counters import BREACH_CHECK_FAILURES

TIMEOUT_S = 2.0
log = structlog.get_logger("authgate.breach")


class BreachCheck:
    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self._url = url.rstrip("/")
        self._timeout = httpx.Timeout(timeout_s)

    def is_breached(self, password: str) -> bool:
        """Blocking; the policy runs in a worker thread. True only on a confirmed match."""
        digest = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
        prefix, suffix = digest[:5], digest[5:]
        try:
            with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
                response = client.get(f"{self._url}/{prefix}", headers={"Add-Padding": "true"})
                response.raise_for_status()
                body = response.text
        except httpx.HTTPError as exc:
            BREACH_CHECK_FAILURES.inc()
            log.warning("password_breach_check_failed", error=type(exc).__name__)
            return False
        for line in body.splitlines():
            candidate, _, count = line.strip().partition(":")
            if candidate.upper() == suffix:
                return count.strip().isdigit() and int(count) > 0
        return False
