"""What the portal's account-lifecycle pages share: moderation refusals as pages, field errors.

A ban or a rate limit from moderation renders as the sign-in page renders it (the banned page
with until when, or the 429 page with `Retry-After`); a domain error that belongs to a form field
(the password policy with zxcvbn's feedback, a wrong current password, a bad code) is shown next
to that field.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.auth.api.common import ctx
from services.auth.api.portal import banned_page
from services.auth.api.portal_support import message
from services.auth.protection import Banned, RateLimited
from shared.errors import DomainError, ErrorCode


def refusal_page(request: Request, error: DomainError) -> Response | None:
    """The page for a ban or a rate limit; None for any other error (the caller handles it)."""
    if isinstance(error, Banned) or error.code == ErrorCode.BANNED:
        return banned_page(request, error)
    if isinstance(error, RateLimited) or error.code == ErrorCode.RATE_LIMITED:
        wait = {"Retry-After": str(error.retry_after or 60)}
        return message(
            request, 429, "Too many attempts", "Too many attempts. Wait a moment and retry.", **wait
        )
    return None


def password_hint(request: Request) -> str:
    """What the policy asks, said before the user types (the refusal itself carries zxcvbn's advice)."""
    minimum = ctx(request).settings.min_password_length
    return f"At least {minimum} characters. A few unrelated words are easy to remember and hard to guess."


def not_found(request: Request, heading: str, text: str) -> Response:
    return message(request, 404, heading, text)
