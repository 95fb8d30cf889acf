"""What a text message asks for: a question, or one of the channel's commands."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CONTEXT_STRATEGIES",
    "HELP",
    "MODES",
    "Command",
    "CommandError",
    "parse_command",
]

#: /mode value -> the gateway's objective
MODES = {"cheap": "cost", "balanced": "balanced", "best": "quality"}
#: /context values (default: the service's own)
CONTEXT_STRATEGIES = ("default", "full", "last_k", "token_budget", "summary", "relevant")
#: strategies that take a number, and its bounds (the context service's)
_WITH_NUMBER = {"last_k": (1, 1000), "token_budget": (16, 10_000_000), "relevant": (1, 1000)}

HELP = (
    "Ask me anything: just write your question.\n\n"
    "Commands:\n"
    "/mode cheap|balanced|best — how much to spend per answer\n"
    "/model <name>|auto — always use one model (/model lists them)\n"
    "/reset — start a new conversation\n"
    "/context full|last_k [k]|token_budget [n]|summary|relevant [k]|default — "
    "how much of the conversation I remember\n"
    "/cost — what your questions cost and saved this week\n"
    "/cache on|off — reuse earlier answers to the same question\n"
    "/delete — erase everything I keep about you\n"
    "/help — this text"
)


class CommandError(ValueError):
    """A command the user got wrong; ``str()`` is the reply to send."""


@dataclass(frozen=True, slots=True)
class Command:
    #: help | mode | model | reset | context | cost | cache | delete
    name: str
    #: the first argument, lower-cased except for model names ("" when none)
    arg: str = ""
    #: the numeric argument of /context last_k|token_budget|relevant (0: the default)
    number: int = 0


def _usage(name: str, form: str) -> CommandError:
    return CommandError(f"Usage: /{name} {form}\n\nSend /help for all commands.")


def parse_command(text: str) -> Command | None:
    """The command in ``text``, or None when it is a question.

    Raises:
        CommandError: an unknown command or a bad argument; the message says how to use it.
    """
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2 or not stripped[1].isalpha():
        return None
    words = stripped[1:].split()
    name, args = words[0].lower(), words[1:]
    if name in ("help", "start"):
        return Command("help")
    if name in ("reset", "cost", "delete"):
        if args:
            raise _usage(name, "(no arguments)")
        return Command(name)
    if name == "mode":
        if len(args) != 1 or args[0].lower() not in MODES:
            raise _usage("mode", "cheap|balanced|best")
        return Command("mode", args[0].lower())
    if name == "model":
        if len(args) > 1:
            raise _usage("model", "<name>|auto")
        arg = args[0] if args else ""
        return Command("model", "auto" if arg.lower() == "auto" else arg)
    if name == "cache":
        if len(args) != 1 or args[0].lower() not in ("on", "off"):
            raise _usage("cache", "on|off")
        return Command("cache", args[0].lower())
    if name == "context":
        form = "|".join(CONTEXT_STRATEGIES)
        if not args or len(args) > 2 or args[0].lower() not in CONTEXT_STRATEGIES:
            raise _usage("context", form)
        strategy = args[0].lower()
        number = 0
        if len(args) == 2:
            low, high = _WITH_NUMBER.get(strategy, (1, 0))
            if not args[1].isdigit() or not low <= int(args[1]) <= high:
                raise _usage("context", "last_k|relevant <k: 1-1000>, or token_budget <16 or more>")
            number = int(args[1])
        return Command("context", strategy, number)
    raise CommandError(f"I don't know the command /{name}.\n\n{HELP}")
