"""What makes two requests the same question: normalisation, scope digests and exact keys.

Pure: plain values in, strings out. Every digest is SHA-256 over length-prefixed fields, so
no choice of field contents can make two different scopes collide by concatenation.
"""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "EMBED_PREFIX_CHARS",
    "CacheToken",
    "Generation",
    "PromptKind",
    "ScopeKey",
    "classify_prompt",
    "exact_key",
    "normalise_prompt",
    "scope_digest",
    "semantic_parts",
]

#: the semantic match embeds at most this many characters of the normalised prompt; the
#: rest must match exactly (its hash is part of the semantic scope)
EMBED_PREFIX_CHARS = 2000

_SPACES = re.compile(r"\s+")
_TRAILING_PUNCTUATION = re.compile(r"[\s?!.\u3002\uff1f\uff01]+$")
#: share of replacement / control characters above which a prompt is taken for binary data
_BINARY_SHARE = 0.1


class PromptKind(enum.Enum):
    """Whether a prompt may be cached at all."""

    TEXT = "text"
    #: empty or only whitespace: there is no question to answer twice
    EMPTY = "empty"
    #: mostly U+FFFD or control characters: mis-decoded bytes, not a question
    BINARY = "binary"


@dataclass(frozen=True, slots=True)
class Generation:
    """The generation parameters that change the answer (unset: ``None``)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int = 0
    stop: tuple[str, ...] = ()
    seed: int = 0


@dataclass(frozen=True, slots=True)
class ScopeKey:
    """Everything that must be equal for two prompts to share an answer.

    ``app_id`` is part of the scope (narrower than the tenant): apps of one tenant may
    have different thresholds and TTLs, and invalidating an app must not leave another
    app of the tenant serving the same entries.
    """

    tenant_id: str
    app_id: str
    model_class: str
    system_prompt: str
    context_fingerprint: str
    generation: Generation = Generation()


@dataclass(frozen=True, slots=True)
class CacheToken:
    """Handed out by a lookup, echoed back by the gateway in ``llm.completed.cache_key``.

    It names the scope and the exact key the answer is to be stored under, so the
    consumer that stores it needs neither the model class nor the context fingerprint.
    """

    scope: str
    key: str

    VERSION = "c1"

    def encode(self) -> str:
        return f"{self.VERSION}:{self.scope}:{self.key}"

    @classmethod
    def decode(cls, text: str) -> CacheToken | None:
        """The token in ``text``, or None when it is empty or malformed."""
        parts = text.split(":")
        if len(parts) != 3 or parts[0] != cls.VERSION:
            return None
        scope, key = parts[1], parts[2]
        if not (_is_digest(scope) and _is_digest(key)):
            return None
        return cls(scope, key)


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def classify_prompt(prompt: str) -> PromptKind:
    """Empty and binary-looking prompts are never cached (and never looked up)."""
    if not prompt.strip():
        return PromptKind.EMPTY
    sample = prompt[:4096]
    odd = sum(
        1
        for c in sample
        if c == "\ufffd" or (unicodedata.category(c) in ("Cc", "Cs", "Co") and c not in "\t\n\r")
    )
    if odd / len(sample) > _BINARY_SHARE:
        return PromptKind.BINARY
    return PromptKind.TEXT


def normalise_prompt(prompt: str) -> str:
    """The form two trivially different spellings of one prompt share.

    Unicode NFKC (full-width letters, ligatures), case folded, whitespace collapsed,
    trailing punctuation dropped. Nothing that can change the meaning is touched: digits,
    negations and word order stay as written.
    """
    text = unicodedata.normalize("NFKC", prompt).casefold()
    text = _SPACES.sub(" ", text).strip()
    return _TRAILING_PUNCTUATION.sub("", text)


def _digest(*fields: str) -> str:
    digest = hashlib.sha256()
    for value in fields:
        data = value.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _canonical_number(value: float | None) -> str:
    return "-" if value is None else repr(round(float(value), 6))


def scope_digest(scope: ScopeKey) -> str:
    """The scope's digest: tenant, app, model class, system prompt, context, generation."""
    generation = scope.generation
    return _digest(
        "scope-v1",
        scope.tenant_id,
        scope.app_id,
        scope.model_class,
        normalise_prompt(scope.system_prompt),
        scope.context_fingerprint,
        _canonical_number(generation.temperature),
        _canonical_number(generation.top_p),
        str(generation.max_tokens),
        "\x1f".join(generation.stop),
        str(generation.seed),
    )


def exact_key(scope: str, prompt: str) -> str:
    """The exact-match key of ``prompt`` within the scope digest ``scope``."""
    return _digest("exact-v1", scope, normalise_prompt(prompt))


def semantic_parts(prompt: str) -> tuple[str, str]:
    """``(text to embed, digest of the rest)`` of a prompt.

    A huge prompt embeds a bounded prefix; the remainder must then match exactly, or two
    long documents sharing a first page would answer each other's questions.
    """
    text = normalise_prompt(prompt)
    head, rest = text[:EMBED_PREFIX_CHARS], text[EMBED_PREFIX_CHARS:]
    return head, (_digest("tail-v1", rest) if rest else "")
