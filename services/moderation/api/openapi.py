"""GET /openapi.json, generated from the models the routes validate with."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.moderation.subjects import SUBJECT_PATTERN
from shared.openapi import Operation, build_openapi

from . import schemas as s

E = s.ErrorOut
BEARER = ["bearer"]
AUTH_ERRORS: dict[int, type[BaseModel] | None] = {401: E, 403: E, 503: E}
BODY_ERRORS: dict[int, type[BaseModel] | None] = {400: E, 413: E, 415: E, 422: E}


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One OpenAPI query parameter per field of a query model."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": field}
        for name, field in schema["properties"].items()
    ]


SUBJECT_PARAMETER = {
    "name": "subject",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": SUBJECT_PATTERN},
    "description": "user:<id>, ip:<address>, net:<ipv6>/64 (URL-encode the slash or not).",
}

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9._:-]+$"},
    "description": "Makes a retry safe: the same caller sending the same event with the same key "
    "within at least 60 s counts it once and gets the first answer again. Auth sends its request "
    "id plus a per-call nonce and retries a failed call once with it.",
}

OPERATIONS = [
    Operation(
        "/v1/events",
        "POST",
        "Count one event and say whether to allow it",
        {200: s.EventOut, **BODY_ERRORS, **AUTH_ERRORS},
        body=s.EventIn,
        security=BEARER,
        parameters=[IDEMPOTENCY_KEY],
    ),
    Operation(
        "/v1/violations",
        "POST",
        "Report a violation detected elsewhere",
        {200: s.ViolationOut, **BODY_ERRORS, **AUTH_ERRORS},
        body=s.ViolationIn,
        security=BEARER,
    ),
    Operation(
        "/v1/bans/check",
        "GET",
        "Is this address or user banned?",
        {200: s.CheckOut, 422: E, **AUTH_ERRORS},
        security=BEARER,
        parameters=query_parameters(s.CheckQuery),
    ),
    Operation(
        "/v1/bans",
        "GET",
        "List active bans (paged) with the change-feed cursor to resume from",
        {200: s.BanListOut, 422: E, **AUTH_ERRORS},
        security=BEARER,
        parameters=query_parameters(s.ListQuery),
    ),
    Operation(
        "/v1/bans",
        "POST",
        "Ban a subject (admin)",
        {201: s.BanRecordOut, 409: E, **BODY_ERRORS, **AUTH_ERRORS},
        body=s.BanIn,
        security=BEARER,
    ),
    Operation(
        "/v1/bans/{subject}",
        "DELETE",
        "Lift a ban (admin)",
        {200: s.UnbanOut, 404: E, 422: E, **AUTH_ERRORS},
        security=BEARER,
        parameters=[SUBJECT_PARAMETER, *query_parameters(s.UnbanQuery)],
    ),
    Operation(
        "/v1/bans/changes",
        "GET",
        "Ban changes after a cursor, or reset",
        {200: s.ChangesOut, 422: E, **AUTH_ERRORS},
        security=BEARER,
        parameters=query_parameters(s.ChangesQuery),
    ),
    Operation(
        "/v1/audit",
        "GET",
        "Audit records of bans and unbans (admin)",
        {200: s.AuditOut, 422: E, **AUTH_ERRORS},
        security=BEARER,
        parameters=query_parameters(s.AuditQuery),
    ),
    Operation("/healthz", "GET", "Liveness", {200: s.HealthOut}),
    Operation("/readyz", "GET", "Readiness: the store answers", {200: s.HealthOut, 503: s.HealthOut}),
    Operation("/openapi.json", "GET", "This document", {200: None}),
]


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    return build_openapi(
        "authgate moderation service",
        "0.1.0",
        OPERATIONS,
        E,
        {"bearer": {"type": "http", "scheme": "bearer", "description": "A key from MODERATION_API_KEYS"}},
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(document())
