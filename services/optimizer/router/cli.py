"""``llmproxy router train|eval|activate|list``: router versions in the database.

The database is ``--database-url``, else ``$DATABASE_URL``, else the embedded stack's
SQLite file. ``activate`` also publishes ``policy.updated`` on NATS (``--nats-url``, else
``$NATS_URL``, else the running embedded stack's), so running gateways switch at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmproxy.platform.errors import ConfigurationError, LLMProxyError

__all__ = ["add_router_commands"]


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from llmproxy.embedded.stack import default_home

    return f"sqlite:///{default_home() / 'llmproxy.db'}"


def _nats_url(args: argparse.Namespace) -> str:
    if args.nats_url:
        return str(args.nats_url)
    if os.environ.get("NATS_URL"):
        return os.environ["NATS_URL"]
    from llmproxy.embedded.stack import read_stack_file

    stack = read_stack_file()
    if stack and stack.get("nats_url"):
        return str(stack["nats_url"])
    raise ConfigurationError("NATS_URL is not set and no embedded stack is running (--nats-url)")


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


def _domains(text: str | None) -> list[str]:
    return [d.strip() for d in (text or "").split(",") if d.strip()]


def cmd_train(args: argparse.Namespace) -> int:
    from llmproxy.optimizer.router.jobs import evaluate_router, train_router
    from llmproxy.optimizer.router.model import ROUTING_MAX_TOKENS, RULES
    from llmproxy.optimizer.router.store import save_router
    from llmproxy.platform.embeddings import Embedder

    async def work(sessions: Any) -> None:
        embedder = Embedder(max_tokens=ROUTING_MAX_TOKENS)
        extra: list[Any] = []
        if args.with_feedback:
            from llmproxy.optimizer.router.feedback import feedback_examples, read_stream

            answered, verdicts = await read_stream(_nats_url(args))
            extra = feedback_examples(
                answered, verdicts, cheap_model=args.cheap_model, strong_model=args.strong_model
            )
            print(
                f"feedback: {len(verdicts)} verdicts on {len(answered)} answered requests -> "
                f"{len(extra)} training examples"
            )
        router = await asyncio.to_thread(
            train_router,
            version=args.version,
            embedder=embedder,
            cheap_model=args.cheap_model,
            strong_model=args.strong_model,
            domains=_domains(args.domains),
            exclude_domains=_domains(args.exclude_domains),
            data_dir=Path(args.data),
            per_domain_limit=args.limit,
            quality_fraction=args.quality,
            seed=args.seed,
            rules=[args.rule] if args.rule else RULES,
            extra_examples=extra,
        )
        print(
            f"router {router.version}: {len(router.trained_on)} domains, "
            f"{int(router.metrics['train_prompts'])} prompts, threshold {router.threshold:.3f} "
            f"(calibrated out of domain for {args.quality:.0%} of the strong model's accuracy)"
        )
        if args.eval_domains:
            result = await asyncio.to_thread(
                evaluate_router,
                router,
                embedder,
                domains=_domains(args.eval_domains),
                data_dir=Path(args.data),
                per_domain_limit=args.limit,
            )
            _print_evaluation(result)
        await save_router(sessions, router, now=datetime.now(UTC))
        print(f"saved (inactive); use it with: llmproxy router activate {router.version}")

    return _run(args, work)


def _print_evaluation(result: Any) -> None:
    print(
        f"held-out: {len(result.domains)} domains, {result.prompts} prompts; "
        f"cheap {result.cheap_accuracy:.3f}, strong {result.strong_accuracy:.3f}; "
        f"at the threshold: {result.strong_share:.1%} strong calls, accuracy "
        f"{result.accuracy:.3f}; 95% of strong needs {result.share_at_95pct:.1%} strong calls"
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from llmproxy.optimizer.router.jobs import evaluate_router
    from llmproxy.optimizer.router.store import load_router
    from llmproxy.platform.embeddings import Embedder

    async def work(sessions: Any) -> None:
        router = await load_router(sessions, args.version)
        result = await asyncio.to_thread(
            evaluate_router,
            router,
            Embedder(max_tokens=router.embedding_max_tokens),
            domains=_domains(args.domains),
            data_dir=Path(args.data),
            per_domain_limit=args.limit,
        )
        _print_evaluation(result)

    return _run(args, work)


def cmd_activate(args: argparse.Namespace) -> int:
    from llmproxy.optimizer.router.store import activate_router, policy_event
    from llmproxy.platform.bus.jetstream import JetStreamBus
    from llmproxy.platform.bus.subjects import POLICY_UPDATED
    from llmproxy.platform.events import publish_event

    async def work(sessions: Any) -> None:
        nats_url = _nats_url(args)  # before any change: a missing bus changes nothing
        router = await activate_router(
            sessions, args.version, now=datetime.now(UTC), threshold=args.threshold
        )
        bus = await JetStreamBus.connect(nats_url, name="llmproxy-router-cli", retries=2)
        try:
            await publish_event(bus, POLICY_UPDATED, policy_event(router, source="router-cli"))
        finally:
            await bus.close()
        print(f"router {router.version} is active (threshold {router.threshold:.3f}); published")

    return _run(args, work)


def cmd_deactivate(args: argparse.Namespace) -> int:
    from llmproxy.optimizer.router.store import deactivate_routers, deactivation_event
    from llmproxy.platform.bus.jetstream import JetStreamBus
    from llmproxy.platform.bus.subjects import POLICY_UPDATED
    from llmproxy.platform.events import publish_event

    async def work(sessions: Any) -> None:
        nats_url = _nats_url(args)  # before any change: a missing bus changes nothing
        was = await deactivate_routers(sessions)
        bus = await JetStreamBus.connect(nats_url, name="llmproxy-router-cli", retries=2)
        try:
            await publish_event(bus, POLICY_UPDATED, deactivation_event(source="router-cli"))
        finally:
            await bus.close()
        print(
            (f"router {was} deactivated" if was else "no router was active")
            + "; gateways use the rule-based policies (published)"
        )

    return _run(args, work)


def cmd_list(args: argparse.Namespace) -> int:
    from llmproxy.optimizer.router.store import list_routers

    async def work(sessions: Any) -> None:
        routers = await list_routers(sessions)
        if not routers:
            print("no routers (train one: llmproxy router train --version v1)")
        for r in routers:
            mark = "*" if r.active else " "
            print(
                f"{mark} {r.version:<16} threshold {r.threshold:.3f}  "
                f"{','.join(r.candidate_models):<28} {len(r.trained_on)} domains  "
                f"{r.created_at:%Y-%m-%d %H:%M}"
            )

    return _run(args, work)


def add_router_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Mount ``router`` on the ``llmproxy`` parser."""
    from llmproxy.optimizer.router.dataset import DEFAULT_DATA_DIR

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url", help="default: $DATABASE_URL, else the embedded stack's SQLite file"
    )
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", default=str(DEFAULT_DATA_DIR), help="routing data directory")
    data.add_argument("--limit", type=int, default=0, help="first N prompts per domain (tests)")

    router = sub.add_parser("router", help="train, evaluate and activate model routers")
    r_sub = router.add_subparsers(dest="action", required=True)
    train = r_sub.add_parser("train", parents=[common, data], help="train a new version")
    train.add_argument("--version", required=True)
    train.add_argument("--domains", help="comma-separated training domains (default: all)")
    train.add_argument("--exclude-domains", help="comma-separated domains to keep out")
    train.add_argument("--eval-domains", help="comma-separated held-out domains to report on")
    train.add_argument("--cheap-model", default="gpt-4o-mini", help="catalog model (cheap)")
    train.add_argument("--strong-model", default="gpt-4o", help="catalog model (strong)")
    train.add_argument(
        "--quality", type=float, default=0.95, help="share of strong accuracy to keep"
    )
    train.add_argument("--seed", type=int, default=7)
    train.add_argument(
        "--rule",
        choices=("confidence", "gain"),
        help="routing rule (default: the one cross-validation on the training domains prefers)",
    )
    train.add_argument(
        "--with-feedback",
        action="store_true",
        help="add llm.feedback verdicts (joined to their llm.completed prompts) as examples",
    )
    train.add_argument("--nats-url", help="for --with-feedback: default $NATS_URL")
    train.set_defaults(func=cmd_train)

    evaluate = r_sub.add_parser("eval", parents=[common, data], help="judge on held-out domains")
    evaluate.add_argument("version")
    evaluate.add_argument("--domains", help="default: every domain it was not trained on")
    evaluate.set_defaults(func=cmd_eval)

    activate = r_sub.add_parser("activate", parents=[common], help="make a version live")
    activate.add_argument("version")
    activate.add_argument("--threshold", type=float, help="override the escalation threshold")
    activate.add_argument("--nats-url", help="default: $NATS_URL, else the running stack's")
    activate.set_defaults(func=cmd_activate)

    deactivate = r_sub.add_parser(
        "deactivate", parents=[common], help="no active router: back to rule-based selection"
    )
    deactivate.add_argument("--nats-url", help="default: $NATS_URL, else the running stack's")
    deactivate.set_defaults(func=cmd_deactivate)

    r_sub.add_parser("list", parents=[common], help="every version").set_defaults(func=cmd_list)
