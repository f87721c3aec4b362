"""structlog setup: JSON lines in production, readable console output in development.

Every record carries the request id bound by the request-id middleware; audit
events go through `audit()` so they share one name space and one shape.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SECRET_KEYS = frozenset({"password", "token", "refresh_token", "authorization", "secret", "hash", "cookie"})


def _drop_secrets(_: Any, __: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    """Belt and braces: a field named like a secret never reaches a log line."""
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(json_output: bool, level: str = "INFO") -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    renderer: structlog.types.Processor
    if json_output:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # uvicorn's access log duplicates ours and carries query strings; keep its errors only.
    logging.getLogger("uvicorn.access").disabled = True


_audit_log = structlog.get_logger("authgate.audit")


def audit(event: str, **fields: Any) -> None:
    """Write a security event to the log stream (stores keep their own copy)."""
    _audit_log.info(event, audit=True, **fields)
