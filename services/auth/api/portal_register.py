"""/portal/register: the API's registration (same moderation event, policy, answer) as a form.

Only when `ALLOW_REGISTRATION`. An address that already has an account gets the same page as a
new one (its owner is told by mail), exactly as `POST /api/auth/register` answers; a username
that is taken is said next to its field, as the API says it with 409.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from services.auth.accounts import REGISTER_MESSAGE, Accounts, check_email_syntax
from services.auth.api.common import client_ip, ctx
from services.auth.api.portal_refusals import not_found, password_hint, refusal_page
from services.auth.api.portal_support import page, read_form
from services.auth.portal.forms import RegisterForm
from services.auth.registration import register_account
from services.auth.schemas import RegisterRequest
from shared.errors import DomainError, ErrorCode

FIELDS = ("name", "username", "email", "password", "confirm_password")
FIELD_MESSAGES = {
    "name": "Enter your name (no control characters).",
    "username": "Usernames are 2-64 letters, digits, '.', '_' or '-'.",
    "email": "Enter a valid email address.",
    "password": "Enter a password.",
    "confirm_password": "Repeat the password.",
}


def _closed(request: Request) -> Response:
    return not_found(request, "Registration closed", "Registration is closed. Ask an administrator.")


def _form_page(request: Request, status: int, values: dict[str, str], errors: dict[str, str]) -> Response:
    return page(
        request,
        "register",
        status,
        form=values,
        errors=errors,
        done=None,
        mail=False,
        password_hint=password_hint(request),
    )


async def register_page(request: Request) -> Response:
    if not ctx(request).settings.allow_registration:
        return _closed(request)
    return _form_page(request, 200, dict.fromkeys(FIELDS[:3], ""), {})


def _shape_errors(body: dict[str, str | None]) -> dict[str, str]:
    """The API's request model decides what is well-formed; its errors go next to their fields."""
    try:
        RegisterRequest.model_validate(body)
    except ValidationError as exc:
        found: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "email"
            found.setdefault(name, FIELD_MESSAGES.get(name, "Check this field."))
        return found
    return {}


async def register_submit(request: Request) -> Response:
    context = ctx(request)
    if not context.settings.allow_registration:
        return _closed(request)
    form = await read_form(request, RegisterForm)
    if isinstance(form, Response):
        return form
    ip = client_ip(request)
    values = {"name": form.name, "username": form.username, "email": form.email}
    try:
        await context.protection.before_register(ip)  # the API's order: counted before any work
    except DomainError as exc:
        refused = refusal_page(request, exc)
        if refused is None:
            raise
        return refused
    body: dict[str, str | None] = {
        **values,
        "username": form.username or None,
        "password": form.password,
        "confirm_password": form.confirm_password,
    }
    errors = _shape_errors(body)
    errors.update({k: v for k, v in _syntax_errors(form).items() if k not in errors})
    if "password" not in errors and form.password != form.confirm_password:
        errors.setdefault("confirm_password", "The passwords do not match.")
    if errors:
        return _form_page(request, 422, values, errors)
    try:
        await register_account(
            context.accounts,
            context.verification,
            context.audit,
            email=form.email,
            username=form.username or None,
            name=form.name,
            password=form.password,
            ip=ip,
        )
    except DomainError as exc:
        field = _field_of(exc)
        if field is None:
            raise
        status = 409 if exc.code == ErrorCode.USERNAME_TAKEN else 422
        text = exc.message
        if exc.code == ErrorCode.INVALID_INPUT and ":" in text:  # `email: …`: the field says which
            text = text.split(":", 1)[1].strip()
        return _form_page(request, status, values, {field: text})
    return page(
        request,
        "register",
        form=values,
        errors={},
        done=REGISTER_MESSAGE,
        mail=context.verification.enabled,
        password_hint="",
    )


def _syntax_errors(form: RegisterForm) -> dict[str, str]:
    """The address and username checks the domain runs, said together with the other fields'."""
    found: dict[str, str] = {}
    try:
        check_email_syntax(form.email)
    except DomainError as exc:
        found["email"] = exc.message.split(":", 1)[-1].strip()
    try:
        Accounts.check_username(form.username or None)
    except DomainError as exc:
        found["username"] = exc.message.split(":", 1)[-1].strip()
    return found


def _field_of(error: DomainError) -> str | None:
    if error.code == ErrorCode.PASSWORD_POLICY:
        return "password"
    if error.code == ErrorCode.USERNAME_TAKEN:
        return "username"
    if error.code == ErrorCode.INVALID_INPUT:
        # `email: …` or `username: …`, as the domain checks phrase them.
        named = str(error.details.get("field") or error.message.split(":", 1)[0])
        return named if named in FIELDS else "email"
    return None
