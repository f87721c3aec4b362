"""Request and response models: the routes validate with them and /openapi.json is built from them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from shared.moderation.policy import SUBMITTABLE, EventType, ViolationType
from shared.moderation.subjects import (
    ACCOUNT_PATTERN,
    BAN_SUBJECT_PATTERN,
    SUBJECT_PATTERN,
    UNKNOWN_CLIENT,
    USER_ID_PATTERN,
    InvalidSubject,
    parse_ip,
    parse_subject,
)
from shared.timefmt import iso_from_ms

MAX_BAN_SECONDS = 10 * 365 * 24 * 3600
_IP_FORMATS: list[dict[str, Any]] = [
    {"type": "string", "format": "ipv4"},
    {"type": "string", "format": "ipv6"},
]
IP_SCHEMA: dict[str, Any] = {
    "anyOf": [*_IP_FORMATS, {"type": "string", "const": UNKNOWN_CLIENT}],
    "description": "A bare IPv4 or IPv6 address (no port; an IPv6 zone such as %eth0 is dropped); "
    "IPv6 counts per /64. `unknown`: a trusted proxy named no client; all such requests are "
    "limited as one client that is never scored or banned.",
}
OPTIONAL_IP_SCHEMA: dict[str, Any] = {**IP_SCHEMA, "anyOf": [*IP_SCHEMA["anyOf"], {"type": "null"}]}
_IN = ConfigDict(extra="forbid", strict=True)
_QUERY = ConfigDict(extra="ignore")
_OUT = ConfigDict(extra="forbid")
# Fields a client must always find, even with a default: a response schema states what is sent.
_ALWAYS = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

# Cross-field rules, one place: which fields each event type accepts.
NO_USER_ID = ("login", "login_failed")
ACCOUNT_TYPES = ("login", "login_failed")


def _integral(value: Any) -> Any:
    """JSON Schema counts 5.0 as an integer; so do we. Booleans and strings stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _when(condition: dict[str, JsonValue], then: dict[str, JsonValue]) -> JsonValue:
    return {"if": {"properties": condition, "required": list(condition)}, "then": then}


_NULL: JsonValue = {"type": "null"}
# The same rules as `EventIn._fields_fit_type`, stated in the schema so generated clients know them.
EVENT_RULES: list[JsonValue] = [
    _when({"type": {"enum": list(NO_USER_ID)}}, {"properties": {"user_id": _NULL}}),
    _when({"type": {"not": {"enum": list(ACCOUNT_TYPES)}}}, {"properties": {"account": _NULL}}),
    _when(
        {"type": {"const": "login_failed"}},
        {"required": ["account"], "properties": {"account": {"type": "string"}}},
    ),
    _when(
        {"device_trusted": {"const": True}},
        {"required": ["account"], "properties": {"account": {"type": "string"}}},
    ),
    _when({"second_factor": {"const": True}}, {"properties": {"type": {"const": "login"}}}),
    _when(
        {"submission": {"const": True}},
        {"properties": {"type": {"enum": list[JsonValue](sorted(SUBMITTABLE))}}},
    ),
    _when(
        {"type": {"const": "concurrent_message"}},
        {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
    ),
    _when({"type": {"not": {"const": "concurrent_message"}}}, {"properties": {"release": {"const": False}}}),
]
ONE_SUBJECT: list[JsonValue] = [
    {"required": ["ip"], "properties": {"ip": {"type": "string"}}},
    {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
]


def _ip(value: str | None) -> str | None:
    if value is None or value == UNKNOWN_CLIENT:
        return value
    try:
        return str(parse_ip(value))
    except InvalidSubject as exc:
        raise ValueError(str(exc)) from None


RFC3339 = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 date-time (without leap seconds)."""
    normal = text.upper().replace("Z", "+00:00")
    if normal.startswith("0000"):
        normal = "0001" + normal[4:]  # RFC 3339 has a year 0; Python's calendar starts at 1
    try:
        return datetime.fromisoformat(normal)
    except ValueError:
        raise ValueError(f"not an RFC 3339 date-time: {text[:40]!r}") from None


def epoch_ms(moment: datetime) -> int:
    try:
        return int(moment.timestamp() * 1000)
    except (OverflowError, ValueError):
        return -(2**62)


iso = iso_from_ms


# Requests ----------------------------------------------------------------------------------


class EventIn(BaseModel):
    """One occurrence the caller wants counted; the answer says whether to let it through."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"allOf": EVENT_RULES})
    type: EventType
    ip: str = Field(max_length=64, json_schema_extra=IP_SCHEMA)
    user_id: str | None = Field(
        default=None, pattern=USER_ID_PATTERN, description="Only after authentication; never on login events."
    )
    account: str | None = Field(
        default=None,
        pattern=ACCOUNT_PATTERN,
        description="account:<hex HMAC-SHA256 of the normalized email>, for login, login_failed and "
        "the login's second step.",
    )
    user_agent: str | None = Field(
        default=None, max_length=1024, description="Accepted for logs; never stored."
    )
    device_trusted: bool = Field(
        default=False,
        description="The client holds a valid authgate_device cookie for this account: "
        "its failures count against LOGIN_DEVICE_MAX instead of LOGIN_ACCOUNT_MAX.",
    )
    release: bool = Field(default=False, description="concurrent_message only: give the in-flight slot back.")
    second_factor: bool = Field(
        default=False,
        description="login only: the login's second step (a TOTP or backup code), counted against "
        "TWO_FACTOR_TEMP_MAX / _WINDOW per address and per account instead of the login limits.",
    )
    submission: bool = Field(
        default=False,
        description="reset_password and verify_email only: the mailed token is being submitted, "
        "counted against the *_SUBMISSION_MAX / _WINDOW limit instead of the request limit.",
    )

    @field_validator("ip")
    @classmethod
    def _valid_ip(cls, value: str) -> str:
        return _ip(value) or value

    @model_validator(mode="after")
    def _fields_fit_type(self) -> EventIn:
        if self.user_id is not None and self.type in NO_USER_ID:
            raise ValueError(f"{self.type} events carry no user_id (a ban must not reveal an account)")
        if self.account is not None and self.type not in ACCOUNT_TYPES:
            raise ValueError("account is only accepted on login and login_failed events")
        if self.type == "login_failed" and self.account is None:
            raise ValueError("login_failed events need the account subject")
        if self.device_trusted and self.account is None:
            raise ValueError("device_trusted needs an account")
        if self.type == "concurrent_message" and self.user_id is None:
            raise ValueError("concurrent_message events need a user_id")
        if self.release and self.type != "concurrent_message":
            raise ValueError("release is only accepted on concurrent_message events")
        if self.submission and self.type not in SUBMITTABLE:
            raise ValueError("submission is only accepted on reset_password and verify_email events")
        if self.second_factor and self.type != "login":
            raise ValueError("second_factor is only accepted on login events")
        return self


class ViolationIn(BaseModel):
    """A violation another service detected; its score is capped at the type's configured score."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"anyOf": ONE_SUBJECT})
    type: ViolationType
    ip: str | None = Field(default=None, max_length=64, json_schema_extra=OPTIONAL_IP_SCHEMA)
    user_id: str | None = Field(default=None, pattern=USER_ID_PATTERN)
    score: int | None = Field(default=None, ge=0, le=1_000_000)

    @field_validator("score", mode="before")
    @classmethod
    def _whole_score(cls, value: Any) -> Any:
        return _integral(value)

    @field_validator("ip")
    @classmethod
    def _valid_ip(cls, value: str | None) -> str | None:
        return _ip(value)

    @model_validator(mode="after")
    def _has_subject(self) -> ViolationIn:
        if self.ip is None and self.user_id is None:
            raise ValueError("give ip, user_id or both")
        return self


class BanIn(BaseModel):
    model_config = _IN
    subject: str = Field(
        pattern=BAN_SUBJECT_PATTERN,
        max_length=200,
        description="user:, ip: or net: (accounts are never banned).",
    )
    reason: str = Field(min_length=1, max_length=500)
    duration_seconds: int = Field(ge=1, le=MAX_BAN_SECONDS)

    _whole_duration = field_validator("duration_seconds", mode="before")(
        classmethod(lambda cls, v: _integral(v))
    )

    @field_validator("subject")
    @classmethod
    def _canonical(cls, value: str) -> str:
        try:
            return parse_subject(value)
        except InvalidSubject as exc:
            raise ValueError(str(exc)) from None


class CheckQuery(BaseModel):
    model_config = _QUERY
    ip: str | None = Field(default=None, max_length=64, json_schema_extra=OPTIONAL_IP_SCHEMA)
    user_id: str | None = Field(default=None, pattern=USER_ID_PATTERN)

    @field_validator("ip")
    @classmethod
    def _valid_ip(cls, value: str | None) -> str | None:
        return _ip(value)


class ListQuery(BaseModel):
    model_config = _QUERY
    cursor: str | None = Field(
        default=None, pattern=SUBJECT_PATTERN, max_length=200, description="`next` from the previous page."
    )
    limit: int = Field(default=100, ge=1, le=1000)


CURSOR_PATTERN = r"^[0-9a-f]{1,32}\.[0-9]{1,20}-[0-9]{1,20}$"


class ChangesQuery(BaseModel):
    model_config = _QUERY
    since: str | None = Field(default=None, pattern=CURSOR_PATTERN, description="A cursor from this API.")
    limit: int = Field(default=1000, ge=1, le=1000)


class AuditQuery(BaseModel):
    model_config = _QUERY
    subject: str | None = Field(default=None, pattern=SUBJECT_PATTERN, max_length=200)
    since: str | None = Field(
        default=None,
        pattern=RFC3339,
        json_schema_extra={"format": "date-time"},
        description="RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z.",
    )
    limit: int = Field(default=100, ge=1, le=1000)

    @field_validator("subject")
    @classmethod
    def _canonical(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return parse_subject(value)
        except InvalidSubject as exc:
            raise ValueError(str(exc)) from None

    @field_validator("since")
    @classmethod
    def _valid_time(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rfc3339(value)
        return value

    def since_ms(self) -> int | None:
        return None if self.since is None else epoch_ms(parse_rfc3339(self.since))


class UnbanQuery(BaseModel):
    model_config = _QUERY
    reason: str = Field(default="unbanned", min_length=1, max_length=500)


# Responses ---------------------------------------------------------------------------------


class BanOut(BaseModel):
    model_config = _OUT
    subject: str
    reason: str
    created_at: str = Field(
        json_schema_extra={"format": "date-time"},
        description="When the ban began: a client bounds what the ban ends by it.",
    )
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
    retry_after: int = Field(ge=0, description="Seconds until the ban ends.")


class EventOut(BaseModel):
    model_config = _OUT
    allowed: bool
    retry_after: int = Field(ge=0)
    limit: int = Field(ge=0)
    remaining: int = Field(ge=0)
    score: int = Field(ge=0)
    ban: BanOut | None = Field(default=None, description="Present when a ban applies.")


class ViolationOut(BaseModel):
    model_config = _OUT
    score: int = Field(ge=0)
    ban: BanOut | None = Field(default=None, description="Present when a ban applies.")


class CheckOut(BaseModel):
    model_config = _ALWAYS
    banned: bool
    subject: str | None = None
    reason: str | None = None
    expires_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    retry_after: int = Field(default=0, ge=0)


class BanRecordOut(BaseModel):
    model_config = _ALWAYS
    subject: str
    reason: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
    retry_after: int = Field(ge=0)
    by: str
    automatic: bool
    violation: str | None = None


class BanListOut(BaseModel):
    model_config = _ALWAYS
    bans: list[BanRecordOut]
    next: str | None = Field(default=None, description="Pass as `cursor` for the next page; null at the end.")
    feed_cursor: str = Field(description="Resume GET /v1/bans/changes from here.")


class UnbanOut(BaseModel):
    model_config = _ALWAYS
    subject: str
    unbanned: bool
    ban: BanRecordOut


class BanEventOut(BaseModel):
    """One ban or unban as the change feed and the audit trail both report it."""

    model_config = _ALWAYS
    action: Literal["ban", "unban"]
    subject: str
    reason: str
    at: str = Field(json_schema_extra={"format": "date-time"})
    by: str
    expires_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    automatic: bool


class ChangeOut(BanEventOut):
    cursor: str


class ChangesOut(BaseModel):
    model_config = _ALWAYS
    cursor: str
    reset: bool = Field(default=False, description="The cursor is unknown or too old: reload GET /v1/bans.")
    changes: list[ChangeOut] = Field(default_factory=list)


class AuditRecordOut(BanEventOut):
    violation: str | None = None


class AuditOut(BaseModel):
    model_config = _ALWAYS
    records: list[AuditRecordOut]


class HealthOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str
    store: str | None = None


class ErrorOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str
