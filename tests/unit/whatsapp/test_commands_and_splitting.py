"""Commands as users type them, and replies split for WhatsApp's 4,096-character limit."""

from __future__ import annotations

import pytest

from llmproxy.whatsapp.commands import HELP, Command, CommandError, parse_command
from llmproxy.whatsapp.splitting import MAX_TEXT, split_message


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("/help", Command("help")),
        ("  /HELP  ", Command("help")),
        ("/mode cheap", Command("mode", "cheap")),
        ("/mode BEST", Command("mode", "best")),
        ("/model gpt-4o", Command("model", "gpt-4o")),
        ("/model Auto", Command("model", "auto")),
        ("/model", Command("model", "")),
        ("/reset", Command("reset")),
        ("/context last_k 3", Command("context", "last_k", 3)),
        ("/context summary", Command("context", "summary")),
        ("/context token_budget 500", Command("context", "token_budget", 500)),
        ("/cost", Command("cost")),
        ("/cache off", Command("cache", "off")),
        ("/delete", Command("delete")),
    ],
)
def test_commands_are_recognised(text: str, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize("text", ["What is 2/3?", "/ not a command", "//", "/", "1/2 cup", ""])
def test_questions_are_not_commands(text: str) -> None:
    assert parse_command(text) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("/mode cheapest", "Usage: /mode cheap|balanced|best"),
        ("/mode", "Usage: /mode"),
        ("/cache maybe", "Usage: /cache on|off"),
        ("/context everything", "Usage: /context"),
        ("/context full 3", "Usage: /context"),
        ("/context last_k 0", "1-1000"),
        ("/context token_budget 3", "16 or more"),
        ("/reset now", "no arguments"),
        ("/model a b", "Usage: /model"),
    ],
)
def test_bad_arguments_explain_the_usage(text: str, words: str) -> None:
    with pytest.raises(CommandError, match=words):
        parse_command(text)


def test_an_unknown_command_gets_the_help_text() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command("/weather Paris")
    assert "I don't know the command /weather" in str(caught.value)
    assert HELP in str(caught.value)


def test_a_short_reply_is_one_part() -> None:
    assert split_message("  Paris.  ") == ["Paris."]
    assert split_message("") == []


def test_long_replies_split_on_paragraphs_first() -> None:
    paragraphs = [("word " * 150).strip() + "." for _ in range(12)]  # ~750 chars each
    text = "\n\n".join(paragraphs)
    parts = split_message(text)
    assert len(parts) == 3
    assert all(len(p) <= MAX_TEXT for p in parts)
    assert all(p.endswith(".") for p in parts)  # never mid-paragraph
    assert "\n\n".join(parts) == text  # nothing lost or reordered


def test_a_paragraph_too_long_splits_on_sentences_then_words() -> None:
    sentence = "This sentence has exactly a few words in it. "
    text = sentence * 200  # one 9,000-character paragraph
    parts = split_message(text)
    assert all(len(p) <= MAX_TEXT for p in parts)
    assert all(p.endswith("in it.") for p in parts)
    assert " ".join(parts) == text.strip()

    words = "antidisestablishmentarianism " * 400
    parts = split_message(words, limit=100)
    assert all(len(p) <= 100 and not p.startswith(" ") for p in parts)
    assert " ".join(parts) == words.strip()


def test_limits_count_emoji_as_whatsapp_does() -> None:
    text = "😀" * 3000  # 6,000 UTF-16 code units
    parts = split_message(text)
    assert [len(p) for p in parts] == [2048, 952]
    assert "".join(parts) == text
    assert split_message("x" * 10, limit=3) == ["xxx", "xxx", "xxx", "x"]
