"""/portal/forgot, /portal/reset-password and /portal/verify-email: the mail flows as pages.

The same managers as `/api/auth/requestPasswordReset`, `/api/auth/resetPassword` and
`/api/user/verify`, behind the same moderation events. Pages reached from a mail link only show a
button on GET (mail scanners fetch links); only the POST spends the token. A reset checks the
password policy before the token is spent, so a weak password leaves the link usable.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.auth.api.common import client_ip, ctx
from services.auth.api.password import REQUESTED
from services.auth.api.portal_refusals import not_found, password_hint, refusal_page
from services.auth.api.portal_support import message, page, read_form
from services.auth.passwords import within_size_cap
from services.auth.portal.forms import ForgotForm, ResetPasswordForm, VerifyEmailForm
from shared.errors import DomainError, ErrorCode

MAX_EMAIL = 254


def _reset_closed(request: Request) -> Response:
    return not_found(request, "Password reset unavailable", "Password reset is not available here.")


async def forgot_page(request: Request) -> Response:
    if not ctx(request).settings.allow_password_reset:
        return _reset_closed(request)
    return page(request, "forgot", email="", error=None, sent=None)


async def forgot_submit(request: Request) -> Response:
    """The same page, after the same work, for every address (`PasswordReset.request`)."""
    context = ctx(request)
    if not context.settings.allow_password_reset:
        return _reset_closed(request)
    form = await read_form(request, ForgotForm)
    if isinstance(form, Response):
        return form
    try:
        await context.protection.before_reset_password(client_ip(request))
    except DomainError as exc:
        return _refused(request, exc)
    address = form.email.strip()
    if not address or len(address) > MAX_EMAIL:
        return page(request, "forgot", 422, email=form.email, error="Enter your email address.", sent=None)
    await context.password_reset.request(address)
    return page(request, "forgot", email="", error=None, sent=REQUESTED)


def _reset_form(request: Request, status: int, token: str, user_id: str, errors: dict[str, str]) -> Response:
    return page(
        request,
        "reset_password",
        status,
        token=token,
        user_id=user_id,
        errors=errors,
        done=False,
        password_hint=password_hint(request),
    )


async def reset_page(request: Request) -> Response:
    """Only the form: the token is carried in it and spent by the POST."""
    if not ctx(request).settings.allow_password_reset:
        return _reset_closed(request)
    query = request.query_params
    return _reset_form(request, 200, query.get("token", "")[:256], query.get("userId", "")[:64], {})


def _invalid_link(request: Request, heading: str, text: str) -> Response:
    return message(request, 400, heading, text)


async def reset_submit(request: Request) -> Response:
    context = ctx(request)
    if not context.settings.allow_password_reset:
        return _reset_closed(request)
    form = await read_form(request, ResetPasswordForm)
    if isinstance(form, Response):
        return form
    try:
        await context.protection.before_reset_password(client_ip(request), submission=True)
    except DomainError as exc:
        return _refused(request, exc)
    if not form.token or not form.userId:
        return _invalid_link(request, "Link not valid", "The reset link is invalid or has expired.")
    errors: dict[str, str] = {}
    if not form.password:
        errors["password"] = "Enter a new password."
    elif not within_size_cap(form.password):
        errors["password"] = "Password must be at most 128 characters and 1 KiB."
    elif form.password != form.confirm_password:
        errors["confirm_password"] = "The passwords do not match."
    if errors:
        return _reset_form(request, 422, form.token, form.userId, errors)
    try:
        await context.password_reset.reset(form.userId, form.token, form.password)
    except DomainError as exc:
        if exc.code == ErrorCode.PASSWORD_POLICY:  # the token is still unspent: try another one
            return _reset_form(request, 422, form.token, form.userId, {"password": exc.message})
        if exc.code == ErrorCode.INVALID_RESET_TOKEN:
            return _invalid_link(request, "Link not valid", exc.message + " Ask for a new one.")
        raise
    return page(request, "reset_password", token="", user_id="", errors={}, done=True, password_hint="")


async def verify_page(request: Request) -> Response:
    """Only a button: the token is carried in the form and spent by the POST."""
    query = request.query_params
    return page(
        request,
        "verify_email",
        token=query.get("token", "")[:256],
        email=query.get("email", "")[:MAX_EMAIL],
        done=False,
    )


async def verify_submit(request: Request) -> Response:
    context = ctx(request)
    form = await read_form(request, VerifyEmailForm)
    if isinstance(form, Response):
        return form
    try:
        await context.protection.before_verify_email(client_ip(request), submission=True)
    except DomainError as exc:
        return _refused(request, exc)
    invalid = "The verification link is invalid or has expired."
    if not form.token or not form.email:
        return _invalid_link(request, "Link not valid", invalid)
    try:
        await context.verification.verify(form.email, form.token)
    except DomainError as exc:
        if exc.code != ErrorCode.INVALID_VERIFICATION_TOKEN:
            raise
        return _invalid_link(request, "Link not valid", exc.message)
    return page(request, "verify_email", token="", email="", done=True)


def _refused(request: Request, error: DomainError) -> Response:
    refused = refusal_page(request, error)
    if refused is None:
        raise error
    return refused
