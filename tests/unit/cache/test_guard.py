"""The mismatch guard: every near-miss category vetoes, paraphrases pass."""

from __future__ import annotations

import pytest

from llmproxy.cache.guard import MismatchKind, find_mismatch

NEAR_MISSES = [
    ("How do I turn on dark mode?", "How do I turn off dark mode?", MismatchKind.POLARITY),
    ("How to enable notifications", "How to disable notifications", MismatchKind.POLARITY),
    ("What is the cheapest flight to Rome?", "What is the most expensive flight to Rome?",
     MismatchKind.POLARITY),
    ("Which laptop is the fastest?", "Which laptop is the slowest?", MismatchKind.POLARITY),
    ("Is coffee bad for you?", "Is coffee not bad for you?", MismatchKind.NEGATION),
    ("I can't log in to my account", "I can log in to my account", MismatchKind.NEGATION),
    ("Convert 5 km to miles", "Convert 10 km to miles", MismatchKind.NUMBER),
    ("Give me three tips for sleep", "Give me five tips for sleep", MismatchKind.NUMBER),
    ("What is 15% of 200?", "What is 15% of 300?", MismatchKind.NUMBER),
    ("Convert 5 km to miles", "Convert 5 miles to km", MismatchKind.UNIT),
    ("Boil water at 100 °C?", "Boil water at 100 °F?", MismatchKind.UNIT),
    ("How much is 20 dollars in yen?", "How much is 20 euros in yen?", MismatchKind.UNIT),
    ("What is the weather in Paris today?", "What is the weather in Paris tomorrow?",
     MismatchKind.DATE),
    ("What happened in May 2020?", "What happened in June 2020?", MismatchKind.DATE),
    ("Opening hours on Monday?", "Opening hours on Sunday?", MismatchKind.DATE),
    ("What is the capital of France?", "What is the capital of Germany?", MismatchKind.ENTITY),
    ("How do I install Django on Ubuntu?", "How do I install Django on Windows?",
     MismatchKind.ENTITY),
    ("Zurich weather", "Geneva weather", MismatchKind.ENTITY),
]  # fmt: skip

PARAPHRASES = [
    ("How do I turn on dark mode?", "how can I switch on dark mode"),
    ("What is the capital of France?", "Tell me France's capital city."),
    ("Convert five km to miles", "convert 5 km into miles please"),
    ("What is the least expensive flight to Rome?", "Which flight to Rome is cheapest?"),
    ("Hugging Face Hub is a platform to host Git-based models.",
     "Hugging Face Hub serves as a repository for Git-based models."),
    ("Huggingface.js is a collection of libraries", "Hugging Face.js is a set of libraries"),
]  # fmt: skip


@pytest.mark.parametrize(("query", "cached", "kind"), NEAR_MISSES)
def test_each_near_miss_category_is_vetoed(query: str, cached: str, kind: MismatchKind) -> None:
    mismatch = find_mismatch(query, cached)
    assert mismatch is not None and mismatch.kind is kind, mismatch
    # and the other way round: which side was cached must not matter
    assert find_mismatch(cached, query) is not None


@pytest.mark.parametrize(("query", "cached"), PARAPHRASES)
def test_paraphrases_keep_the_hit(query: str, cached: str) -> None:
    assert find_mismatch(query, cached) is None
    assert find_mismatch(cached, query) is None


def test_identical_prompts_never_mismatch() -> None:
    text = "Not before 5 pm on Monday: turn off the heating in Building B, 21 °C max."
    assert find_mismatch(text, text) is None
