"""HTTP for protection's refusals: `RateLimited` carries the IETF `RateLimit-*` headers.

`Banned` needs nothing beyond the generic domain-error rendering (body fields and
Retry-After); a rate limit also tells the client its budget.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.auth.protection import RateLimited
from shared.errors import ApiError, api_error_handler, api_error_of


def rate_limited_answer(error: RateLimited) -> ApiError:
    assert error.retry_after is not None
    return api_error_of(
        error,
        {
            "Retry-After": str(error.retry_after),
            "RateLimit-Limit": str(error.limit),
            "RateLimit-Remaining": str(error.remaining),
            "RateLimit-Reset": str(error.retry_after),
        },
    )


async def rate_limited_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimited)
    return await api_error_handler(request, rate_limited_answer(exc))


HANDLERS = {RateLimited: rate_limited_handler}
