"""`authgate mail-queue`: the outbox as an operator sees it (never a mail's body)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.auth.context import AuthContext
from shared.timefmt import iso_utc

ACTOR = "cli"


class MailQueueError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    """What an operator may read: addresses, kinds, states and errors, never the sealed body."""
    fields = ("kind", "to", "state", "attempts", "last_error")
    shown: dict[str, Any] = {"id": str(entry["_id"]), **{name: entry.get(name) for name in fields}}
    for name in ("created_at", "next_attempt_at", "expires_at", "sent_at"):
        value = entry.get(name)
        shown[name] = iso_utc(value) if value is not None else None
    return shown


async def list_queue(context: AuthContext, args: argparse.Namespace) -> None:
    entries = [_shown(entry) for entry in await context.outbox.listing(args.limit)]
    await context.audit.record("cli_mail_queue_list", actor=ACTOR, count=len(entries))
    if args.json:
        print(json.dumps(entries, indent=2))
        return
    print(f"{'id':22}  {'kind':16}  {'state':7}  {'tries':5}  to")
    for entry in entries:
        print(
            f"{entry['id']:22}  {entry['kind'] or '-':16}  {entry['state']:7}  {entry['attempts'] or 0:5}  "
            f"{entry['to']}{'  (' + str(entry['last_error']) + ')' if entry['last_error'] else ''}"
        )
    print(f"{len(entries)} mail(s)")


async def retry(context: AuthContext, args: argparse.Namespace) -> None:
    if not await context.outbox.requeue(args.id):
        raise MailQueueError(f"no dead letter {args.id!r} that can be retried (sent, expired or unknown)")
    await context.audit.record("cli_mail_queue_retry", actor=ACTOR, entry=args.id)
    print(f"{args.id} queued again")


async def drop(context: AuthContext, args: argparse.Namespace) -> None:
    if not await context.outbox.drop(args.id):
        raise MailQueueError(f"no mail {args.id!r} in the queue")
    await context.audit.record("cli_mail_queue_drop", actor=ACTOR, entry=args.id)
    print(f"{args.id} dropped")


def add_commands(sub: Any) -> None:
    queue = sub.add_parser("mail-queue", help="list, retry or drop queued mails (never shows a body)")
    actions = queue.add_subparsers(dest="mail_action", required=True, metavar="ACTION")
    p = actions.add_parser("list", help="every queued, sent and dead mail, oldest first")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=200)
    p.set_defaults(store_command=list_queue)
    p = actions.add_parser("retry", help="send a dead letter again")
    p.add_argument("id")
    p.set_defaults(store_command=retry)
    p = actions.add_parser("drop", help="delete a mail from the queue")
    p.add_argument("id")
    p.set_defaults(store_command=drop)
