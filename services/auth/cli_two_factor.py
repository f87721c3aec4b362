"""`authgate disable-2fa` and `authgate reencrypt-totp`: two-factor operations for operators."""

from __future__ import annotations

import argparse

from services.auth.accounts import user_id_of
from services.auth.context import AuthContext
from services.auth.store import Document

ACTOR = "cli"


class TwoFactorCliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


async def _user(context: AuthContext, email: str) -> Document:
    user = await context.accounts.find_by_email(email)
    if user is None:
        raise TwoFactorCliError(f"no user with email {email}")
    return user


async def disable_two_factor(context: AuthContext, args: argparse.Namespace) -> None:
    """For an owner who lost the authenticator and the codes: 2FA off, every session ended (a
    session opened by whoever held the factor ends too), the owner told by mail."""
    user = await _user(context, args.email)
    user_id = user_id_of(user)
    if await context.two_factor.requirement(user) == "none":
        raise TwoFactorCliError(f"{user['email']} has no two-factor sign-in")
    await context.two_factor.remove(user, actor=ACTOR)
    revoked = await context.sessions.revoke(user_id=user_id, reason="2fa_disabled", actor=ACTOR)
    await context.protection.devices.bump_epoch(user_id)
    await context.audit.record("cli_disable_2fa", user_id=user_id, actor=ACTOR, sessions=revoked)
    print(f"two-factor sign-in is off for {user['email']}; revoked {revoked} session(s)", flush=True)


async def reencrypt_totp(context: AuthContext, args: argparse.Namespace) -> None:
    """Seal every TOTP secret with the current TOTP_ENCRYPTION_KEY (after a rotation)."""
    moved, unreadable = await context.two_factor.reencrypt()
    await context.audit.record("cli_reencrypt_totp", actor=ACTOR, resealed=moved, unreadable=unreadable)
    print(f"re-encrypted {moved} secret(s) with the current key", flush=True)
    if unreadable:
        raise TwoFactorCliError(
            f"{unreadable} secret(s) open with no configured key: "
            "keep their old key in TOTP_ENCRYPTION_KEYS_OLD"
        )


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("disable-2fa", help="turn a user's two-factor sign-in off (revokes every session)")
    p.add_argument("email")
    p.set_defaults(store_command=disable_two_factor)
    p = sub.add_parser("reencrypt-totp", help="re-encrypt every TOTP secret with TOTP_ENCRYPTION_KEY")
    p.set_defaults(store_command=reencrypt_totp)
