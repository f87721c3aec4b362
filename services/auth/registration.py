"""A new local account, with the rules the JSON API and the portal share.

One answer whether the address is new or taken: an existing address is never revealed (its
owner is told by mail instead). The password policy, with the user's own words as context, runs
before anything is written; without mail nobody can prove an address, so accounts then start
verified, as in LibreChat.
"""

from __future__ import annotations

from dataclasses import replace

from services.auth.accounts import (
    Accounts,
    EmailTaken,
    NewUser,
    UsernameTaken,
    check_email_syntax,
    user_id_of,
)
from services.auth.audit import AuditTrail
from services.auth.counters import REGISTRATIONS
from services.auth.email_verification import EmailVerification
from shared.errors import DomainError, ErrorCode


def username_taken() -> DomainError:
    return DomainError(ErrorCode.USERNAME_TAKEN, "That username is taken.")


async def register_account(
    accounts: Accounts,
    verification: EmailVerification,
    audit: AuditTrail,
    *,
    email: str,
    username: str | None,
    name: str,
    password: str,
    ip: str,
) -> None:
    """Create the account (or, for a taken address, do the same work and notify its owner)."""
    email = check_email_syntax(email)
    username = Accounts.check_username(username)
    name = name.strip()
    checked = await accounts.checked_password(password, [email, username or "", name])
    if username is not None and await accounts.username_exists(username):
        raise username_taken()
    try:
        new = NewUser(email=email, name=name, username=username, password=checked)
        user = await accounts.create(replace(new, email_verified=not verification.enabled))
    except UsernameTaken:
        raise username_taken() from None
    except EmailTaken:
        REGISTRATIONS.labels("existing_email").inc()
        await audit.record("register_existing_email", ip=ip, outcome="ignored")
        if verification.enabled:
            await verification.notify_existing(email)
        return
    REGISTRATIONS.labels("created").inc()
    await audit.record("register", user_id=user_id_of(user), ip=ip)
    if verification.enabled:
        await verification.send(user)
