"""Keys: what counts as the same question, and what must never share an entry."""

from __future__ import annotations

from dataclasses import replace

from llmproxy.cache.keys import (
    EMBED_PREFIX_CHARS,
    CacheToken,
    Generation,
    PromptKind,
    ScopeKey,
    classify_prompt,
    exact_key,
    normalise_prompt,
    scope_digest,
    semantic_parts,
)

SCOPE = ScopeKey("acme", "bot", "objective:cost", "You are terse.", "")


def test_trivial_spelling_differences_share_a_key() -> None:
    scope = scope_digest(SCOPE)
    assert exact_key(scope, "What is  the capital of France?") == exact_key(
        scope, "  what is the capital of \uff46\uff52\uff41\uff4e\uff43\uff45"
    )
    assert normalise_prompt("Turn OFF dark mode!!") == "turn off dark mode"


def test_meaningful_differences_change_the_key() -> None:
    scope = scope_digest(SCOPE)
    assert exact_key(scope, "turn on dark mode") != exact_key(scope, "turn off dark mode")
    assert exact_key(scope, "costs 10") != exact_key(scope, "costs 100")


def test_every_scope_field_separates_entries() -> None:
    base = scope_digest(SCOPE)
    variants = [
        replace(SCOPE, tenant_id="globex"),
        replace(SCOPE, app_id="other"),
        replace(SCOPE, model_class="objective:quality"),
        replace(SCOPE, system_prompt="You are verbose."),
        replace(SCOPE, context_fingerprint="after-a-different-turn"),
        replace(SCOPE, generation=Generation(temperature=0.7)),
        replace(SCOPE, generation=Generation(max_tokens=10)),
    ]
    digests = {scope_digest(v) for v in variants}
    assert base not in digests and len(digests) == len(variants)


def test_fields_cannot_collide_by_concatenation() -> None:
    a = replace(SCOPE, tenant_id="ac", app_id="mebot")
    b = replace(SCOPE, tenant_id="acme", app_id="bot")
    assert scope_digest(a) != scope_digest(b)


def test_empty_and_binary_prompts_are_not_text() -> None:
    assert classify_prompt("   \n") is PromptKind.EMPTY
    assert classify_prompt("\x00\x01\x02garbage\ufffd\ufffd\ufffd") is PromptKind.BINARY
    assert classify_prompt("Caf\u00e9 au lait?\n") is PromptKind.TEXT


def test_huge_prompts_embed_a_prefix_and_hash_the_rest() -> None:
    head = "x" * EMBED_PREFIX_CHARS
    one_head, one_tail = semantic_parts(head + " first ending")
    two_head, two_tail = semantic_parts(head + " second ending")
    assert one_head == two_head and len(one_head) == EMBED_PREFIX_CHARS
    assert one_tail != two_tail
    assert semantic_parts("short")[1] == ""


def test_tokens_round_trip_and_reject_garbage() -> None:
    scope = scope_digest(SCOPE)
    token = CacheToken(scope, exact_key(scope, "hi"))
    assert CacheToken.decode(token.encode()) == token
    for bad in ("", "c1:x:y", "c2:" + scope + ":" + scope, "nonsense"):
        assert CacheToken.decode(bad) is None
