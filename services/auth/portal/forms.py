"""The portal's form bodies, validated with pydantic like every JSON body of the API."""

from __future__ import annotations

from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field

MAX_FORM_BYTES = 8 * 1024


class Form(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    csrf: str = Field(default="", max_length=128)
    rd: str = Field(default="", max_length=2048)


class LoginForm(Form):
    email: str = Field(default="", max_length=320)
    password: str = Field(default="", max_length=1024)


class TwoFactorForm(Form):
    code: str = Field(default="", max_length=64)


class LogoutForm(Form):
    pass


class FormTooLarge(ValueError):
    pass


def fields(body: bytes) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body as one value per name (the first one)."""
    if len(body) > MAX_FORM_BYTES:
        raise FormTooLarge("form body too large")
    found: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        found.setdefault(name, value)
    return found


class RegisterForm(Form):
    name: str = Field(default="", max_length=256)
    username: str = Field(default="", max_length=128)
    email: str = Field(default="", max_length=320)
    password: str = Field(default="", max_length=1024)
    confirm_password: str = Field(default="", max_length=1024)


class ForgotForm(Form):
    email: str = Field(default="", max_length=320)


class ResetPasswordForm(Form):
    token: str = Field(default="", max_length=256)
    userId: str = Field(default="", max_length=64)  # the mail link's query name
    password: str = Field(default="", max_length=1024)
    confirm_password: str = Field(default="", max_length=1024)


class VerifyEmailForm(Form):
    token: str = Field(default="", max_length=256)
    email: str = Field(default="", max_length=320)


class ChangePasswordForm(Form):
    current_password: str = Field(default="", max_length=1024)
    new_password: str = Field(default="", max_length=1024)
    confirm_password: str = Field(default="", max_length=1024)


class EndSessionForm(Form):
    session_id: str = Field(default="", max_length=128)


class ConfirmTwoFactorForm(Form):
    code: str = Field(default="", max_length=64)
    password: str = Field(default="", max_length=1024)


class DisableTwoFactorForm(Form):
    code: str = Field(default="", max_length=64)
    password: str = Field(default="", max_length=1024)


class PasskeyNameForm(Form):
    name: str = Field(default="", max_length=256)


class PasskeyRemoveForm(Form):
    pass
