"""Reading a verified identity: roles at a dotted path of one token, and the profile fields.

Roles follow LibreChat (`OPENID_REQUIRED_ROLE_PARAMETER_PATH` is a lodash-style dotted path into
the ID token, the access token or the userinfo answer); a string claim is one role, never a
substring match. The email is LibreChat's choice (`OPENID_EMAIL_CLAIM`, else `email`, else
`preferred_username`, else `upn`), but only an address from the `email` claim with
`email_verified: true` counts as verified, and no link is ever made on it: links are keyed on
(issuer, subject).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.auth.social.oidc import SignedInIdentity
from services.auth.social.settings import OpenIdSettings, RoleRule


def at_path(document: dict[str, Any], path: str) -> Any:
    """`a.b.c` (or `a[0].b`) inside nested objects; None when any step is missing."""
    current: Any = document
    for part in path.replace("[", ".").replace("]", "").split("."):
        if part == "":
            continue
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def roles_in(identity: SignedInIdentity, rule: RoleRule) -> set[str]:
    source = {"id": identity.id_claims, "access": identity.access_claims, "userinfo": identity.userinfo}
    value = at_path(source[rule.token_kind], rule.path)
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()


def has_role(identity: SignedInIdentity, rule: RoleRule) -> bool:
    return bool(roles_in(identity, rule) & set(rule.roles))


@dataclass(frozen=True)
class Profile:
    email: str  # as asserted, not yet normalized; "" when the provider gave none
    email_verified: bool
    username: str | None
    name: str


def profile_of(identity: SignedInIdentity, settings: OpenIdSettings) -> Profile:
    claims = {**identity.id_claims, **identity.userinfo}  # userinfo is the fuller view (same sub)

    def text(name: str | None) -> str | None:
        value = claims.get(name) if name else None
        return value.strip() if isinstance(value, str) and value.strip() else None

    if settings.email_claim:
        email = text(settings.email_claim) or ""
    else:
        email = text("email") or text("preferred_username") or text("upn") or ""
    verified = claims.get("email_verified") is True and text("email") is not None and email == text("email")
    if settings.username_claim:
        username = text(settings.username_claim)
    else:
        username = text("preferred_username") or text("username") or None
    given, family = text("given_name"), text("family_name")
    if settings.name_claim and text(settings.name_claim):
        name = text(settings.name_claim) or ""
    elif given and family:
        name = f"{given} {family}"
    else:
        name = text("name") or given or family or username or ""
    return Profile(email=email, email_verified=verified, username=username, name=name)
