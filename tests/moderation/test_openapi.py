"""/openapi.json documents every route, and real answers conform to the documented schemas."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
from starlette.routing import Route

from services.moderation.app import ROUTES
from tests.moderation.conftest import fresh_ip, fresh_user


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "components": doc["components"]}


async def test_every_route_is_documented(admin_client: httpx.AsyncClient) -> None:
    doc = (await admin_client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    for route in ROUTES:
        assert isinstance(route, Route)
        path = route.path.replace("{subject:subject}", "{subject}")
        for method in route.methods or ():
            if method != "HEAD":
                assert (path, method) in documented, (path, method)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            if path.startswith("/v1/"):
                assert op["security"] == [{"bearer": []}]
                assert {"401", "403", "503"} <= set(op["responses"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_answers_conform_to_the_document(
    auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    doc = (await admin_client.get("/openapi.json")).json()
    user = fresh_user()
    samples = [
        (
            "/v1/events",
            "post",
            await auth_client.post("/v1/events", json={"type": "login", "ip": fresh_ip()}),
        ),
        (
            "/v1/events",
            "post",
            await auth_client.post("/v1/events", json={"type": "non_browser", "ip": fresh_ip()}),
        ),
        (
            "/v1/violations",
            "post",
            await auth_client.post("/v1/violations", json={"type": "login", "user_id": user}),
        ),
        (
            "/v1/bans",
            "post",
            await admin_client.post(
                "/v1/bans", json={"subject": f"user:{user}", "reason": "r", "duration_seconds": 60}
            ),
        ),
        ("/v1/bans/check", "get", await auth_client.get("/v1/bans/check", params={"user_id": user})),
        ("/v1/bans", "get", await auth_client.get("/v1/bans")),
        ("/v1/bans/changes", "get", await auth_client.get("/v1/bans/changes")),
        ("/v1/audit", "get", await admin_client.get("/v1/audit")),
        ("/v1/bans/{subject}", "delete", await admin_client.delete(f"/v1/bans/user:{user}")),
        ("/v1/events", "post", await auth_client.post("/v1/events", json={"type": "bogus"})),
        ("/readyz", "get", await auth_client.get("/readyz")),
    ]
    for path, method, response in samples:
        responses = doc["paths"][path][method]["responses"]
        assert str(response.status_code) in responses, (path, response.status_code)
        schema = responses[str(response.status_code)]["content"]["application/json"]["schema"]
        validator = jsonschema_rs.Draft202012Validator(_resolve(doc, schema))
        errors = [e.message for e in validator.iter_errors(response.json())]
        assert not errors, (path, response.text, errors)
