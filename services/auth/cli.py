"""The `authgate` admin CLI: LibreChat's create-user/delete-user scripts, done safely.

Every command works against MONGO_URI (or the embedded store `make run` started),
uses the same domain code as the service (policy, hashing, the one revocation
function), records an audit event, and exits non-zero with one clear line on
any error: 1 for a refused request, 2 for usage or configuration, 3 when a
service it needs is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from services.auth.accounts import (
    ROLES,
    EmailTaken,
    NewUser,
    UsernameTaken,
    check_email_syntax,
    normalize_email,
    public_user,
    user_id_of,
)
from services.auth.cli_mail import MailQueueError
from services.auth.cli_mail import add_commands as add_mail_commands
from services.auth.cli_moderation import ModerationCliError
from services.auth.cli_moderation import add_commands as add_moderation_commands
from services.auth.cli_two_factor import TwoFactorCliError
from services.auth.cli_two_factor import add_commands as add_two_factor_commands
from services.auth.context import AuthContext, build_context
from services.auth.settings import EMBEDDED_MONGO_PORT_FILE, load_settings
from shared.config import ConfigError, Env
from shared.errors import ApiError, DomainError, StoreUnavailable
from shared.logging import configure_logging

ACTOR = "cli"
# A first connection on a busy host can take longer than the 0.5 s health probe allows;
# a person waiting for a command can afford a few seconds before "cannot reach".
CLI_CONNECT_TIMEOUT_S = 5.0


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def out(text: str) -> None:
    print(text, flush=True)


# Shared plumbing -------------------------------------------------------------------


async def open_context() -> AuthContext:
    try:
        settings = load_settings(root=Path.cwd())
    except ConfigError as exc:
        raise CliError(f"config error: {exc}", 2) from None
    context = build_context(settings)
    if not await context.store.ping(timeout_s=CLI_CONNECT_TIMEOUT_S):
        await context.store.close()
        port_file = Path.cwd() / EMBEDDED_MONGO_PORT_FILE
        if port_file.is_file() and "127.0.0.1" in settings.mongo_uri:
            raise CliError("the embedded store is not running; start it with `make run`", 3)
        raise CliError("cannot reach MongoDB at MONGO_URI (is it running and reachable?)", 3)
    await context.store.ensure_indexes(settings.audit_retention_days)
    return context


async def require_user(context: AuthContext, email: str) -> dict[str, Any]:
    user = await context.accounts.find_by_email(email)
    if user is None:
        raise CliError(f"no user with email {normalize_email(email)!r}")
    return user


def read_new_password(args: argparse.Namespace) -> str:
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\n")
    if getattr(args, "password", None):
        return str(args.password)
    if not sys.stdin.isatty():
        raise CliError("no terminal for the password prompt; use --password-stdin", 2)
    first = getpass.getpass("New password: ")
    second = getpass.getpass("Repeat password: ")
    if first != second:
        raise CliError("the passwords do not match")
    return first


def confirm(prompt: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise CliError("refusing without confirmation; pass --yes", 2)
    return input(f"{prompt} [y/N] ").strip().lower() in {"y", "yes"}


# Commands ----------------------------------------------------------------------------


async def create_user(context: AuthContext, args: argparse.Namespace) -> None:
    email = check_email_syntax(args.email)
    username = context.accounts.check_username(args.username)
    name = (args.name or email.split("@")[0]).strip()
    generated = None
    if args.generate_password:
        generated = secrets.token_urlsafe(24)
        raw = generated
    else:
        raw = read_new_password(args)
    password = await context.accounts.checked_password(raw, [email, username or "", name])
    try:
        user = await context.accounts.create(
            NewUser(
                email=email,
                name=name,
                username=username,
                password=password,
                role=args.role,
                email_verified=args.email_verified,
            )
        )
    except EmailTaken:
        raise CliError(f"a user with email {email!r} already exists") from None
    except UsernameTaken:
        raise CliError(f"the username {username!r} is taken") from None
    await context.audit.record("cli_create_user", user_id=user_id_of(user), actor=ACTOR, role=args.role)
    out(f"created user {user_id_of(user)} <{email}> role={args.role}")
    if generated is not None:
        out(f"generated password (shown once): {generated}")


async def delete_user(context: AuthContext, args: argparse.Namespace) -> None:
    user = await require_user(context, args.email)
    if not confirm(f"Delete {user['email']} and revoke every session?", args.yes):
        raise CliError("aborted")
    user_id = user_id_of(user)
    await context.sessions.revoke(user_id=user_id, reason="user_deleted", actor=ACTOR)
    await context.accounts.delete(user)
    await context.passkeys.forget(user_id)
    # Again once the account is gone: a login that checked the password between the first
    # revocation and the deletion may have created a session since.
    await context.sessions.revoke(user_id=user_id, reason="user_deleted", actor=ACTOR)
    await context.audit.record("cli_delete_user", user_id=user_id, actor=ACTOR)
    out(f"deleted user {user_id} <{user['email']}>")


async def list_users(context: AuthContext, args: argparse.Namespace) -> None:
    users = [public_user(doc) for doc in await context.accounts.list_users()]
    await context.audit.record("cli_list_users", actor=ACTOR, count=len(users))
    if args.json:
        out(json.dumps(users, indent=2))
        return
    out(f"{'id':24}  {'email':32}  {'username':16}  {'role':5}  created")
    for user in users:
        out(
            f"{user['id']:24}  {user['email']:32}  {user['username'] or '-':16}  "
            f"{user['role']:5}  {user['createdAt'] or '-'}"
        )
    out(f"{len(users)} user(s)")


async def set_role(context: AuthContext, args: argparse.Namespace) -> None:
    user = await require_user(context, args.email)
    await context.accounts.set_role(user, args.role)
    revoked = await context.sessions.revoke(user_id=user_id_of(user), reason="role_changed", actor=ACTOR)
    await context.audit.record("cli_set_role", user_id=user_id_of(user), actor=ACTOR, role=args.role)
    out(f"{user['email']} is now {args.role}; revoked {revoked} session(s)")


async def revoke_sessions(context: AuthContext, args: argparse.Namespace) -> None:
    user = await require_user(context, args.email)
    revoked = await context.sessions.revoke(user_id=user_id_of(user), reason="admin_revoked", actor=ACTOR)
    await context.protection.devices.bump_epoch(user_id_of(user))  # old device cookies die too
    await context.audit.record("cli_revoke_sessions", user_id=user_id_of(user), actor=ACTOR, sessions=revoked)
    out(f"revoked {revoked} session(s) of {user['email']}")


async def reset_password(context: AuthContext, args: argparse.Namespace) -> None:
    user = await require_user(context, args.email)
    raw = read_new_password(args)
    context_words = [user.get("email", ""), user.get("username") or "", user.get("name") or ""]
    password = await context.accounts.checked_password(raw, context_words)
    await context.accounts.set_password(user, password)
    revoked = await context.sessions.revoke(user_id=user_id_of(user), reason="password_reset", actor=ACTOR)
    await context.protection.devices.bump_epoch(user_id_of(user))
    await context.audit.record("cli_reset_password", user_id=user_id_of(user), actor=ACTOR, sessions=revoked)
    out(f"password reset for {user['email']}; revoked {revoked} session(s)")


async def verify_email(context: AuthContext, args: argparse.Namespace) -> None:
    """Mark an address verified without a mail (an operator vouches for it)."""
    user = await require_user(context, args.email)
    await context.accounts.mark_email_verified(user)
    await context.audit.record("cli_verify_email", user_id=user_id_of(user), actor=ACTOR)
    out(f"{user['email']} is verified")


async def doctor(context: AuthContext, args: argparse.Namespace) -> None:
    """Report accounts that share a canonical email or username; exit 1 if any, merge nothing."""
    groups = await context.accounts.look_alikes()
    await context.audit.record("cli_doctor", actor=ACTOR, look_alike_groups=len(groups))
    if not groups:
        out("no look-alike accounts")
        return
    for group in groups:
        out(f"{group.kind} {group.canonical}: {len(group.accounts)} accounts share it")
        for doc in group.accounts:
            out(
                f"  {user_id_of(doc)}  email={doc.get('email')!r}  username={doc.get('username')!r}  "
                f"role={doc.get('role', 'USER')}"
            )
    raise CliError(
        f"{len(groups)} group(s) of look-alike accounts; resolve them by hand (delete-user or edit the store)"
    )


def generate_secrets(args: argparse.Namespace) -> None:
    """The seed's "JWT Keys" tool, and the TOTP key: independent 32-byte hex secrets."""
    out(f"JWT_SECRET={secrets.token_hex(32)}")
    out(f"JWT_REFRESH_SECRET={secrets.token_hex(32)}")
    out(f"TOTP_ENCRYPTION_KEY={secrets.token_hex(32)}")


# Parser --------------------------------------------------------------------------------

StoreCommand = Callable[[AuthContext, argparse.Namespace], Awaitable[None]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authgate", description="authgate administration")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("create-user", help="create a user (works while registration is disabled)")
    p.add_argument("email")
    p.add_argument("--name")
    p.add_argument("--username")
    p.add_argument("--role", choices=ROLES, default="USER")
    p.add_argument("--email-verified", action="store_true")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--password", help="the password (prefer the prompt or --password-stdin)")
    group.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    group.add_argument("--generate-password", action="store_true", help="generate one and print it once")
    p.set_defaults(store_command=create_user)

    p = sub.add_parser("delete-user", help="delete a user and revoke every session")
    p.add_argument("email")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(store_command=delete_user)

    p = sub.add_parser("list-users", help="list users")
    p.add_argument("--json", action="store_true")
    p.set_defaults(store_command=list_users)

    p = sub.add_parser("set-role", help="set a user's role (revokes their sessions)")
    p.add_argument("email")
    p.add_argument("role", choices=ROLES)
    p.set_defaults(store_command=set_role)

    p = sub.add_parser("revoke-sessions", help="revoke every session of a user")
    p.add_argument("email")
    p.set_defaults(store_command=revoke_sessions)

    p = sub.add_parser("reset-password", help="set a new password (revokes every session)")
    p.add_argument("email")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(store_command=reset_password)

    p = sub.add_parser("verify-email", help="mark a user's email address verified")
    p.add_argument("email")
    p.set_defaults(store_command=verify_email)

    p = sub.add_parser("doctor", help="report accounts sharing a canonical email or username")
    p.set_defaults(store_command=doctor)

    p = sub.add_parser(
        "generate-secrets", help="print fresh JWT_SECRET / JWT_REFRESH_SECRET / TOTP_ENCRYPTION_KEY"
    )
    p.set_defaults(plain_command=generate_secrets)
    add_moderation_commands(sub)
    add_mail_commands(sub)
    add_two_factor_commands(sub)
    return parser


async def run_store_command(command: StoreCommand | None, args: argparse.Namespace) -> None:
    context = await open_context()
    try:
        if getattr(args, "moderation_command", None) is not None:
            await args.moderation_command(context, Env.load(Path.cwd()), args)
        elif command is not None:
            await command(context, args)
    finally:
        context.accounts.hasher.close()
        await context.store.close()


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(json_output=False, level="WARNING")  # audit records go to the store
    try:
        if getattr(args, "plain_command", None) is not None:
            args.plain_command(args)
        else:
            asyncio.run(run_store_command(getattr(args, "store_command", None), args))
    except (CliError, ModerationCliError, MailQueueError, TwoFactorCliError) as exc:
        print(f"authgate: {exc}", file=sys.stderr)
        raise SystemExit(exc.code) from None
    except (ApiError, DomainError) as exc:
        print(f"authgate: {exc.message} ({exc.code})", file=sys.stderr)
        raise SystemExit(1) from None
    except StoreUnavailable:
        print("authgate: the store stopped answering; nothing more was done", file=sys.stderr)
        raise SystemExit(3) from None
    except KeyboardInterrupt:
        print("authgate: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
