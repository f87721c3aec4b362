"""Every error code has one spelling and one status; a domain error renders as `{code, message}`."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.errors import EXCEPTION_HANDLERS, HTTP_STATUS, DomainError, ErrorCode


def test_every_code_has_a_status() -> None:
    assert set(HTTP_STATUS) == set(ErrorCode)
    assert len({code.value for code in ErrorCode}) == len(ErrorCode)


async def test_domain_error_is_rendered_by_the_api_layer() -> None:
    async def refuse(request: Request) -> Response:
        await asyncio.sleep(0)
        raise DomainError(ErrorCode.RATE_LIMITED, "Slow down.", retry_after=7, details={"retry_after": 7})

    app = Starlette(routes=[Route("/", refuse)], exception_handlers=dict(EXCEPTION_HANDLERS))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.get("/")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json() == {"code": "rate_limited", "message": "Slow down.", "retry_after": 7}
