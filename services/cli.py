"""The ``llmproxy`` command: run services, the embedded stack, and talk to them."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from llmproxy.platform.errors import LLMProxyError

__all__ = ["main"]

#: service name -> wiring module (each defines ``App`` and ``Settings``)
SERVICE_MODULES = {
    name: f"llmproxy.{name}.service"
    for name in ("gateway", "context", "cache", "scheduler", "profiler", "optimizer", "whatsapp")
}


def _fail(message: str, code: int = 2) -> int:
    print(f"llmproxy: {message}", file=sys.stderr)
    return code


# -- serve ------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from llmproxy.platform.runtime import run_service
    from llmproxy.platform.settings import load_settings

    module = importlib.import_module(SERVICE_MODULES[args.service])
    try:
        settings = load_settings(module.Settings)
    except LLMProxyError as exc:
        return _fail(f"{args.service}: {exc.message}")
    return run_service(module.App(settings), settings)


# -- up / status ------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from llmproxy.embedded.stack import EmbeddedStack, StackConfig, default_home

    home = Path(args.home).expanduser() if args.home else default_home()
    stack = EmbeddedStack(
        StackConfig(home=home, gateway_port=args.gateway_port, http_port=args.http_port)
    )

    async def run() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        starting = asyncio.current_task()
        started = False

        def on_signal() -> None:
            stop.set()
            if not started and starting is not None:
                starting.cancel()  # Ctrl-C during start-up: stop what started, then leave

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        print(f"Starting LLMProxy (home {home}) ...", flush=True)
        try:
            await stack.start()
        except asyncio.CancelledError:
            print("Interrupted during start-up; everything started was stopped.")
            return 130
        except LLMProxyError as exc:
            return _fail(exc.message, 1)
        started = True
        print(
            f"\nLLMProxy is up. Gateway (gRPC): {stack.addresses['gateway']}\n"
            f"OpenAI-compatible API: {stack.http_url}  (API key in {stack.api_key_file})\n"
            f'Ask it: llmproxy ask "What is the capital of France?"\n'
            f"Logs: {stack.logs}  —  Ctrl-C to stop.",
            flush=True,
        )
        await stop.wait()
        print("\nStopping ...", flush=True)
        await stack.stop()
        return 0

    return asyncio.run(run())


def cmd_status(args: argparse.Namespace) -> int:
    from llmproxy.embedded.stack import default_home, read_stack_file
    from llmproxy.platform.health import check_health

    home = Path(args.home).expanduser() if args.home else default_home()
    stack = read_stack_file(home)
    if stack is None:
        return _fail(f"no running stack found in {home} (start one with: llmproxy up)", 1)
    services: dict[str, str] = stack["services"]  # type: ignore[assignment]
    results = asyncio.run(check_health(services))
    healthy = True
    print(f"{'service':<10} {'address':<22} health")
    for name, address in services.items():
        status = results[name]
        healthy &= status == "SERVING"
        print(f"{name:<10} {address:<22} {status}")
    print(
        f"\nNATS {stack['nats_url']}  database {stack['database_url']}  model {stack['model_url']}"
    )
    return 0 if healthy else 1


# -- ask --------------------------------------------------------------------------------


def _gateway_address(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("LLMPROXY_GATEWAY_ADDR"):
        return os.environ["LLMPROXY_GATEWAY_ADDR"]
    from llmproxy.embedded.stack import read_stack_file

    stack = read_stack_file()
    if stack and stack.get("gateway"):
        return str(stack["gateway"])
    return "127.0.0.1:50051"


def _api_key() -> str:
    """$LLMPROXY_API_KEY, else the key ``llmproxy up`` keeps in its home."""
    if os.environ.get("LLMPROXY_API_KEY"):
        return os.environ["LLMPROXY_API_KEY"]
    from llmproxy.embedded.stack import API_KEY_FILE, default_home

    try:
        return (default_home() / API_KEY_FILE).read_text().strip()
    except OSError:
        return ""


def cmd_ask(args: argparse.Namespace) -> int:
    from llmproxy.platform.client import ask_once, format_reply

    address = _gateway_address(args.gateway)
    try:
        reply = asyncio.run(
            ask_once(
                address,
                args.question,
                conversation_id=args.conversation or "",
                model=args.model or "",
                system_prompt=args.system or "",
                max_tokens=args.max_tokens,
                timeout_s=args.timeout,
                api_key=_api_key(),
            )
        )
    except LLMProxyError as exc:
        return _fail(exc.message, 1)
    if args.json:
        from google.protobuf.json_format import MessageToDict

        print(json.dumps(MessageToDict(reply), indent=2))
    else:
        print(format_reply(reply))
    return 0


# -- db ---------------------------------------------------------------------------------


def cmd_db(args: argparse.Namespace) -> int:
    from llmproxy.platform.db import migrate

    url = args.url or os.environ.get("DATABASE_URL")
    if not url:
        return _fail("DATABASE_URL is not set (or pass --url)")
    try:
        if args.action == "upgrade":
            asyncio.run(migrate.upgrade(url, args.revision or "head"))
        elif args.action == "downgrade":
            asyncio.run(migrate.downgrade(url, args.revision or "base"))
        print(f"database at revision {asyncio.run(migrate.current_revision(url))}")
    except LLMProxyError as exc:
        return _fail(exc.message, 1)
    return 0


# -- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmproxy",
        description="LLMProxy: a cost-saving, predictable front door to LLMs and GPU clusters.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one service in this process")
    serve.add_argument("service", choices=sorted(SERVICE_MODULES))
    serve.set_defaults(func=cmd_serve)

    up = sub.add_parser(
        "up", help="run the whole stack on this machine (embedded NATS, SQLite, local model)"
    )
    up.add_argument("--home", help="state directory (default $LLMPROXY_HOME or ~/.llmproxy)")
    up.add_argument(
        "--gateway-port", type=int, default=int(os.environ.get("LLMPROXY_GATEWAY_PORT", "50051"))
    )
    up.add_argument(
        "--http-port",
        type=int,
        default=int(os.environ.get("LLMPROXY_GATEWAY_HTTP_PORT", "8080")),
        help="port of the OpenAI-compatible HTTP API",
    )
    up.set_defaults(func=cmd_up)

    status = sub.add_parser("status", help="health of each service of the running stack")
    status.add_argument("--home")
    status.set_defaults(func=cmd_status)

    ask = sub.add_parser("ask", help="ask the gateway a question")
    ask.add_argument("question")
    ask.add_argument("--gateway", help="host:port (default: the running stack's gateway)")
    ask.add_argument("--conversation", help="continue this conversation id")
    ask.add_argument("--model", help="pin a model")
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--max-tokens", type=int, default=256)
    ask.add_argument("--timeout", type=float, default=120.0)
    ask.add_argument("--json", action="store_true", help="print the whole reply as JSON")
    ask.set_defaults(func=cmd_ask)

    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("revision", nargs="?")
    db.add_argument("--url", help="database URL (default $DATABASE_URL)")
    db.set_defaults(func=cmd_db)

    from llmproxy.gateway.admin_cli import add_admin_commands

    add_admin_commands(sub)

    from llmproxy.optimizer.router.cli import add_router_commands

    add_router_commands(sub)

    from llmproxy.scheduler.jobs_cli import add_jobs_commands

    add_jobs_commands(sub)

    try:
        from llmproxy.scheduler.sim.cli import add_sim_commands
    except ImportError:
        pass
    else:
        add_sim_commands(sub)

    from llmproxy.optimizer.cli import add_search_commands

    add_search_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
