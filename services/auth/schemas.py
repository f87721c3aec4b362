"""Request and response models: validation and the OpenAPI document come from the same source.

Strict string types mean `{"$gt": ""}` is a 422, never a query; unknown fields
are refused, so `role` or `emailVerified` cannot be mass-assigned.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool, StrictStr

_STRICT = ConfigDict(extra="forbid", strict=True)
_OUT = ConfigDict(extra="forbid", populate_by_name=True)


class RegisterRequest(BaseModel):
    model_config = _STRICT
    # Not blank (it is stripped) and no control characters: names end up in headers and logs.
    name: StrictStr = Field(
        min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
    )
    username: StrictStr | None = Field(default=None, max_length=64)
    email: StrictStr = Field(min_length=3, max_length=254)
    password: StrictStr = Field(max_length=4096)
    confirm_password: StrictStr = Field(max_length=4096)


class VerifyEmailRequest(BaseModel):
    model_config = _STRICT
    email: StrictStr = Field(min_length=1, max_length=254)
    token: StrictStr = Field(min_length=1, max_length=256)


class EmailRequest(BaseModel):
    model_config = _STRICT
    email: StrictStr = Field(min_length=1, max_length=254)


class ResetPasswordRequest(BaseModel):
    model_config = _STRICT
    userId: StrictStr = Field(min_length=1, max_length=64)
    token: StrictStr = Field(min_length=1, max_length=256)
    password: StrictStr = Field(max_length=4096)
    confirm_password: StrictStr = Field(max_length=4096)


class ChangePasswordRequest(BaseModel):
    model_config = _STRICT
    current_password: StrictStr = Field(max_length=4096)
    new_password: StrictStr = Field(max_length=4096)


class StatusMessageResponse(BaseModel):
    model_config = _OUT
    message: str
    status: str


class LoginRequest(BaseModel):
    model_config = _STRICT
    email: StrictStr = Field(min_length=1, max_length=254)
    password: StrictStr = Field(max_length=4096)
    refresh_token_in_body: StrictBool = False


_CODE = Field(default=None, max_length=64)


class TwoFactorProofRequest(BaseModel):
    """A TOTP code (`token`) or a backup code (`backupCode`), LibreChat's field names."""

    model_config = _STRICT
    token: StrictStr | None = _CODE
    backupCode: StrictStr | None = _CODE


class TwoFactorChangeRequest(TwoFactorProofRequest):
    """Changes also need the current password (`password`, or `current_password`)."""

    password: StrictStr | None = Field(default=None, max_length=4096)
    current_password: StrictStr | None = Field(default=None, max_length=4096)


class TwoFactorConfirmRequest(BaseModel):
    """The password is needed here when the enrolment was started without it."""

    model_config = _STRICT
    token: StrictStr = Field(min_length=1, max_length=64)
    password: StrictStr | None = Field(default=None, max_length=4096)
    current_password: StrictStr | None = Field(default=None, max_length=4096)


class TwoFactorTempRequest(TwoFactorProofRequest):
    tempToken: StrictStr = Field(min_length=1, max_length=2048)


class TwoFactorEnrolment(BaseModel):
    model_config = _OUT
    otpauthUrl: str
    backupCodes: list[str]


class BackupCodesResponse(BaseModel):
    model_config = _OUT
    backupCodes: list[str]


class TwoFactorPending(BaseModel):
    """A login whose password was right and whose second factor is still to come."""

    model_config = _OUT
    twoFAPending: Literal[True]
    tempToken: str


class RefreshRequest(BaseModel):
    model_config = _STRICT
    # Room for a mistaken access token, so it gets 401 `invalid_refresh_token`, not a schema error.
    refresh_token: StrictStr | None = Field(default=None, max_length=8192)


class LogoutRequest(BaseModel):
    model_config = _STRICT
    refresh_token: StrictStr | None = Field(default=None, max_length=8192)


class MessageResponse(BaseModel):
    model_config = _OUT
    message: str


class LogoutResponse(BaseModel):
    """`redirect`: the OpenID provider's end-session URL (OPENID_USE_END_SESSION_ENDPOINT)."""

    model_config = _OUT
    message: str
    redirect: str | None = None


class BackchannelLogoutRequest(BaseModel):
    """OIDC Back-Channel Logout 1.0: the provider's signed logout token, as a form field."""

    model_config = ConfigDict(extra="allow")
    logout_token: str


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str


class UserOut(BaseModel):
    """LibreChat's public user fields: `_id` and `id` alike, the optional ones when stored."""

    model_config = _OUT
    id_: str = Field(alias="_id")
    id: str
    email: str
    username: str | None
    name: str | None
    role: Literal["USER", "ADMIN"] | str
    provider: str
    emailVerified: bool
    avatar: str | None
    createdAt: str | None
    updatedAt: str | None
    plugins: list[Any] | None = None
    twoFactorEnabled: bool | None = None
    termsAccepted: bool | None = None
    personalization: dict[str, Any] | None = None
    favorites: list[Any] | None = None
    skillStates: dict[str, Any] | list[Any] | None = None
    tenantId: str | None = None


class TokenResponse(BaseModel):
    model_config = _OUT
    token: str
    user: UserOut
    refresh_token: str | None = None


class LoginResponse(RootModel[TokenResponse | TwoFactorPending]):
    """A session, or (for an account with 2FA) the temp token for /api/auth/2fa/verify-temp."""


class SessionOut(BaseModel):
    model_config = _OUT
    id: str
    created: str
    last_used: str
    expires: str
    ip: str | None
    user_agent: str | None
    current: bool


class SessionList(BaseModel):
    model_config = _OUT
    sessions: list[SessionOut]


class RevokedResponse(BaseModel):
    model_config = _OUT
    message: str
    revoked: int


class ConfigResponse(BaseModel):
    model_config = _OUT
    emailLoginEnabled: bool
    registrationEnabled: bool
    socialLoginEnabled: bool
    socialRegistrationEnabled: bool
    passwordResetEnabled: bool
    emailEnabled: bool
    minPasswordLength: int
    appTitle: str
    serverDomain: str
    discordLoginEnabled: bool
    facebookLoginEnabled: bool
    githubLoginEnabled: bool
    googleLoginEnabled: bool
    appleLoginEnabled: bool
    passkeyLoginEnabled: bool
    openidLoginEnabled: bool
    openidLabel: str
    openidImageUrl: str | None = None
    openidAutoRedirect: bool
    samlLoginEnabled: bool
    socialLogins: list[str]


class Jwks(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[dict[str, str]]


class IntrospectRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    token: str
    token_type_hint: str | None = None


class IntrospectResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: bool
    token_type: str | None = None
    sub: str | None = None
    username: str | None = None
    email: str | None = None
    role: str | None = None
    sid: str | None = None
    jti: str | None = None
    iat: int | None = None
    exp: int | None = None
    iss: str | None = None
    aud: str | None = None


class HealthResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str
