"""schemathesis against both services' OpenAPI documents, over real sockets to real processes.

Checks: no 5xx, every status documented, every body and content type as documented,
and an operation that declares security refuses the same request without
credentials or with invalid ones (`ignored_auth` probes both). Valid credentials
are supplied per operation (a fresh access token, the introspection service key,
moderation's admin key) so the fuzzer reaches the handlers. Bounded: a few dozen
examples per operation, no shrinking, no example database.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from services.auth.api.openapi import document as auth_document
from services.moderation.api.openapi import document as moderation_document
from tests.fuzz.conftest import FuzzStack
from tests.integration.support import STRONG_PASSWORD

AUTH = schemathesis.openapi.from_dict(auth_document())
MODERATION = schemathesis.openapi.from_dict(moderation_document())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]
# AUTHGATE_FUZZ_EXAMPLES=500 for a deeper run by hand; `make test` stays bounded.
FUZZ = settings(
    max_examples=int(os.environ.get("AUTHGATE_FUZZ_EXAMPLES", "25")),
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _schemes(case: schemathesis.Case[Any]) -> set[str]:
    return {name for requirement in case.operation.definition.raw.get("security", []) for name in requirement}


def _positive(case: schemathesis.Case[Any]) -> bool:
    return case.meta is not None and not case.meta.generation.mode.is_negative


def _use_real_values(case: schemathesis.Case[Any], stack: FuzzStack, session: dict[str, Any]) -> None:
    """Half the valid-shaped bodies carry real tokens or credentials, so success paths are fuzzed too."""
    if not _positive(case) or not isinstance(case.body, dict) or len(str(case.body)) % 2:
        return
    path = case.operation.path
    if path in ("/api/auth/refresh", "/api/auth/logout"):
        case.body["refresh_token"] = session["refresh_token"]
    elif path == "/api/auth/introspect":
        case.body["token"] = session["token"]
    elif path == "/api/auth/login":
        case.body.update(email=stack.email, password=STRONG_PASSWORD)


@AUTH.parametrize()
@FUZZ
def test_auth_api(case: schemathesis.Case[Any], fuzz_stack: FuzzStack) -> None:
    headers: dict[str, str] = {}
    schemes = _schemes(case)
    session = fuzz_stack.login()
    if "bearer" in schemes:
        headers["Authorization"] = f"Bearer {session['token']}"
    elif "service_key" in schemes:
        headers["Authorization"] = f"Bearer {fuzz_stack.service_key}"
    _use_real_values(case, fuzz_stack, session)
    case.call_and_validate(base_url=fuzz_stack.auth.url, headers=headers, checks=CHECKS, timeout=30)


@MODERATION.parametrize()
@FUZZ
def test_moderation_api(case: schemathesis.Case[Any], fuzz_stack: FuzzStack) -> None:
    headers = {"Authorization": f"Bearer {fuzz_stack.moderation.admin_key}"} if _schemes(case) else {}
    case.call_and_validate(
        base_url=fuzz_stack.moderation.server.url, headers=headers, checks=CHECKS, timeout=30
    )


def test_the_fuzzed_documents_are_the_served_ones(fuzz_stack: FuzzStack) -> None:
    assert httpx.get(f"{fuzz_stack.auth.url}/openapi.json").json() == auth_document()
    assert httpx.get(f"{fuzz_stack.moderation.server.url}/openapi.json").json() == moderation_document()


BANNED = settings(FUZZ, max_examples=5)


@AUTH.parametrize()
@BANNED
def test_auth_api_for_a_banned_address(case: schemathesis.Case[Any], banned_loopback: FuzzStack) -> None:
    """While moderation bans the caller's address every route still answers as documented."""
    headers = {}
    if "service_key" in _schemes(case):
        headers["Authorization"] = f"Bearer {banned_loopback.service_key}"
    case.call_and_validate(base_url=banned_loopback.auth.url, headers=headers, checks=CHECKS, timeout=30)
