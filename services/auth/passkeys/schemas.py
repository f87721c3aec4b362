"""Request and response models of `/api/auth/webauthn/*` (validation and OpenAPI from one source).

A credential is the browser's `PublicKeyCredential.toJSON()`: base64url strings, bounded so a
hostile body costs no parsing. Fields browsers add beyond these are ignored; every field read
is a strict string.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

_STRICT = ConfigDict(extra="forbid", strict=True)
_BROWSER = ConfigDict(extra="ignore", strict=True)
_OUT = ConfigDict(extra="forbid")
B64 = r"^[A-Za-z0-9_-]*={0,2}$"


class AttestationResponse(BaseModel):
    model_config = _BROWSER
    clientDataJSON: StrictStr = Field(max_length=4096, pattern=B64)
    attestationObject: StrictStr = Field(max_length=32768, pattern=B64)
    transports: list[StrictStr] | None = Field(default=None, max_length=8)


class AssertionResponse(BaseModel):
    model_config = _BROWSER
    clientDataJSON: StrictStr = Field(max_length=4096, pattern=B64)
    authenticatorData: StrictStr = Field(max_length=4096, pattern=B64)
    signature: StrictStr = Field(max_length=2048, pattern=B64)
    userHandle: StrictStr | None = Field(default=None, max_length=512, pattern=B64)


class RegistrationCredential(BaseModel):
    model_config = _BROWSER
    id: StrictStr = Field(min_length=1, max_length=1400, pattern=B64)
    rawId: StrictStr = Field(min_length=1, max_length=1400, pattern=B64)
    type: Literal["public-key"]
    response: AttestationResponse
    authenticatorAttachment: StrictStr | None = Field(default=None, max_length=32)


class AuthenticationCredential(BaseModel):
    model_config = _BROWSER
    id: StrictStr = Field(min_length=1, max_length=1400, pattern=B64)
    rawId: StrictStr = Field(min_length=1, max_length=1400, pattern=B64)
    type: Literal["public-key"]
    response: AssertionResponse
    authenticatorAttachment: StrictStr | None = Field(default=None, max_length=32)


class RegisterVerifyRequest(BaseModel):
    model_config = _STRICT
    credential: RegistrationCredential
    name: StrictStr | None = Field(default=None, max_length=64)


class LoginVerifyRequest(BaseModel):
    model_config = _STRICT
    credential: AuthenticationCredential
    refresh_token_in_body: StrictBool = False  # service clients, as in /api/auth/login


class RenameRequest(BaseModel):
    model_config = _STRICT
    name: StrictStr = Field(min_length=1, max_length=64)


class EmptyRequest(BaseModel):
    model_config = _STRICT


class RegisterOptionsRequest(BaseModel):
    """The current password: required when the account has one (a passkey outlives it)."""

    model_config = _STRICT
    password: StrictStr | None = Field(default=None, max_length=4096)


class PasskeyOut(BaseModel):
    model_config = _OUT
    id: str
    name: str
    created: str
    last_used: str | None
    transports: list[str]
    backed_up: bool


class PasskeyList(BaseModel):
    model_config = _OUT
    passkeys: list[PasskeyOut]


class PasskeyRegistered(BaseModel):
    model_config = _OUT
    message: str
    passkey: PasskeyOut


class CreationOptions(BaseModel):
    """`PublicKeyCredentialCreationOptionsJSON` (WebAuthn Level 3): pass to
    `PublicKeyCredential.parseCreationOptionsFromJSON` or decode the base64url fields."""

    model_config = ConfigDict(extra="allow")
    rp: dict[str, Any]
    user: dict[str, Any]
    challenge: str
    pubKeyCredParams: list[dict[str, Any]]
    excludeCredentials: list[dict[str, Any]]
    authenticatorSelection: dict[str, Any]


class RequestOptions(BaseModel):
    """`PublicKeyCredentialRequestOptionsJSON`: an empty `allowCredentials` (discoverable)."""

    model_config = ConfigDict(extra="allow")
    rpId: str
    challenge: str
    allowCredentials: list[dict[str, Any]]
    userVerification: str


def credential_json(model: BaseModel) -> dict[str, Any]:
    """The credential as the `webauthn` library reads it (unset optional fields left out)."""
    found: dict[str, Any] = model.model_dump(exclude_none=True)
    return found
