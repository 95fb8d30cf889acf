"""``llmproxy tenants|keys|limits ...``: administration against the database directly.

The database is ``--database-url``, else ``$DATABASE_URL``, else the embedded stack's
SQLite file in ``$LLMPROXY_HOME`` (the one ``llmproxy up`` uses).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from llmproxy.gateway import admin
from llmproxy.gateway.keys import DEFAULT_SCOPES
from llmproxy.gateway.limits import EACH_USER, METRICS, WINDOWS
from llmproxy.platform.errors import LLMProxyError

__all__ = ["add_admin_commands"]


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from llmproxy.embedded.stack import default_home

    return f"sqlite:///{default_home() / 'llmproxy.db'}"


def _run(args: argparse.Namespace, work: Callable[[Any], Awaitable[None]]) -> int:
    from llmproxy.platform.db import create_engine, session_factory

    async def main() -> None:
        engine = create_engine(_database_url(args))
        try:
            await work(session_factory(engine))
        finally:
            await engine.dispose()

    try:
        asyncio.run(main())
    except LLMProxyError as exc:
        print(f"llmproxy: {exc.message}", file=sys.stderr)
        return 1
    return 0


def cmd_tenants(args: argparse.Namespace) -> int:
    async def work(sessions: Any) -> None:
        if args.action == "create":
            tenant = await admin.create_tenant(
                sessions, args.name, reference_model=args.reference_model
            )
            print(f"tenant {tenant.id} created")
        else:
            for tenant in await admin.list_tenants(sessions):
                print(f"{tenant.id:<24} reference model: {tenant.reference_model or '(catalog)'}")

    return _run(args, work)


def cmd_keys(args: argparse.Namespace) -> int:
    async def work(sessions: Any) -> None:
        if args.action == "create":
            info, plaintext = await admin.create_key(
                sessions,
                tenant=args.tenant,
                app=args.app,
                name=args.name or "",
                scopes=args.scopes.split(","),
            )
            print(plaintext)
            print(
                f"key {info.key_id} for app {info.app_id} ({', '.join(info.scopes)}); "
                "store it now: it is never shown again",
                file=sys.stderr,
            )
        elif args.action == "list":
            for key in await admin.list_keys(sessions, tenant=args.tenant):
                state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
                print(
                    f"{key.key_id:<10} {key.app_id:<30} {','.join(key.scopes):<20} "
                    f"{key.created_at:%Y-%m-%d %H:%M}  {state}  {key.name}"
                )
        else:
            key = await admin.revoke_key(sessions, args.key_id)
            print(f"key {key.key_id} revoked")

    return _run(args, work)


def _amount(metric: str, text: str) -> int:
    # money is given in dollars on the command line, stored in nano-dollars
    if metric == "cost_nanousd":
        return int(Decimal(text.lstrip("$")) * 1_000_000_000)
    return int(text)


def cmd_limits(args: argparse.Namespace) -> int:
    async def work(sessions: Any) -> None:
        if args.action == "set":
            rule = await admin.set_limit(
                sessions,
                tenant=args.tenant,
                metric=args.metric,
                window=args.window,
                amount=_amount(args.metric, args.amount),
                app=args.app,
                key_id=args.key,
                user_id=EACH_USER if args.each_user else args.user,
            )
            print(f"limit {rule.id}: {rule.describe()}")
        elif args.action == "list":
            for rule in await admin.list_limits(sessions, tenant=args.tenant):
                print(f"{rule.id:<14} {rule.describe()}")
        else:
            await admin.delete_limit(sessions, args.limit_id)
            print(f"limit {args.limit_id} deleted")

    return _run(args, work)


def add_admin_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Mount ``tenants``, ``keys`` and ``limits`` on the ``llmproxy`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url", help="default: $DATABASE_URL, else the embedded stack's SQLite file"
    )

    tenants = sub.add_parser("tenants", help="create and list tenants")
    t_sub = tenants.add_subparsers(dest="action", required=True)
    create = t_sub.add_parser("create", parents=[common])
    create.add_argument("name")
    create.add_argument("--reference-model", help="savings are measured against this model")
    t_sub.add_parser("list", parents=[common])
    tenants.set_defaults(func=cmd_tenants)

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    k_sub = keys.add_subparsers(dest="action", required=True)
    create = k_sub.add_parser("create", parents=[common], help="prints the key once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--app", required=True, help="app name (created if new)")
    create.add_argument("--name", help="a label for the key")
    create.add_argument(
        "--scopes",
        default=",".join(sorted(DEFAULT_SCOPES)),
        help="comma-separated: chat, usage, usage:tenant (default: chat,usage)",
    )
    listing = k_sub.add_parser("list", parents=[common])
    listing.add_argument("--tenant")
    revoke = k_sub.add_parser("revoke", parents=[common])
    revoke.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)

    limits = sub.add_parser("limits", help="budgets and rate limits")
    l_sub = limits.add_subparsers(dest="action", required=True)
    setting = l_sub.add_parser("set", parents=[common], help="add a limit")
    setting.add_argument("--tenant", required=True)
    setting.add_argument("--app", help="only this app (name)")
    setting.add_argument("--key", help="only this key id")
    who = setting.add_mutually_exclusive_group()
    who.add_argument("--user", help="only this end user")
    who.add_argument("--each-user", action="store_true", help="every end user separately")
    setting.add_argument("--metric", choices=METRICS, required=True)
    setting.add_argument("--window", choices=WINDOWS, required=True)
    setting.add_argument(
        "--amount", required=True, help="dollars for cost_nanousd (e.g. 5 or 0.25), else a count"
    )
    listing = l_sub.add_parser("list", parents=[common])
    listing.add_argument("--tenant")
    delete = l_sub.add_parser("delete", parents=[common])
    delete.add_argument("limit_id")
    limits.set_defaults(func=cmd_limits)
