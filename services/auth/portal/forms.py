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


class LinksForm(Form):
    provider: str = Field(default="", max_length=32)
    action: str = Field(default="", max_length=16)
