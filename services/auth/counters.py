"""Counters the domain and API modules increment; exported on the management port's /metrics."""

from __future__ import annotations

from prometheus_client import Counter

LOGINS = Counter("authgate_logins_total", "Login attempts by outcome", ["outcome"])
REGISTRATIONS = Counter("authgate_registrations_total", "Registration attempts by outcome", ["outcome"])
REFRESHES = Counter("authgate_refreshes_total", "Refresh attempts by outcome", ["outcome"])
REVOCATIONS = Counter("authgate_session_revocations_total", "Revoked sessions by reason", ["reason"])
DENIALS = Counter("authgate_moderation_denials_total", "Requests refused by moderation", ["event", "outcome"])
BREACH_CHECK_FAILURES = Counter(
    "authgate_password_breach_check_failures",
    "Breached-password range checks that failed (the password was accepted: the check fails open)",
)
MAILS = Counter(
    "authgate_mail_deliveries_total",
    "Outbox delivery attempts by outcome (sent, retry, dead, expired, unreadable, suppressed)",
    ["outcome"],
)
