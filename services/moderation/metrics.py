"""Moderation counters: decisions by event type and bans by kind. No subject ever becomes a label."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS = Counter("authgate_moderation_events_total", "Events by type and answer", ["type", "outcome"])
BANS = Counter("authgate_moderation_bans_total", "Bans by subject kind and origin", ["kind", "origin"])
UNBANS = Counter("authgate_moderation_unbans_total", "Lifted bans by subject kind", ["kind"])


def subject_kind(subject: str) -> str:
    return subject.split(":", 1)[0]
