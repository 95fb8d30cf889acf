"""Replies longer than WhatsApp allows in one message, split where a reader would pause."""

from __future__ import annotations

import re

__all__ = ["MAX_TEXT", "split_message"]

#: WhatsApp's limit for a text message body, in characters (counted as UTF-16 code units,
#: so an emoji outside the Basic Multilingual Plane counts twice)
MAX_TEXT = 4096

_SENTENCE_END = re.compile(r"[.!?…。](?:[\"')\]]*)\s")


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fitting_prefix(text: str, limit: int) -> int:
    """The longest prefix of ``text`` (in code points) within ``limit`` UTF-16 units."""
    if _utf16_len(text) <= limit:
        return len(text)
    units = 0
    for i, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def _cut(window: str) -> int:
    """Where to end a part inside ``window``: a paragraph, else a sentence, else a space."""
    floor = len(window) // 4  # never cut so early that parts become tiny
    paragraph = window.rfind("\n\n")
    if paragraph > floor:
        return paragraph
    ends = [m.end() for m in _SENTENCE_END.finditer(window)]
    if ends and ends[-1] > floor:
        return ends[-1]
    line = window.rfind("\n")
    if line > floor:
        return line
    space = window.rfind(" ")
    if space > floor:
        return space
    return len(window)


def split_message(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` as parts of at most ``limit`` characters, cut on paragraph, then sentence,
    then word boundaries (a word longer than a part is cut where it must be)."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    parts: list[str] = []
    rest = text.strip()
    while rest:
        end = _fitting_prefix(rest, limit)
        if end == len(rest):
            parts.append(rest)
            break
        cut = _cut(rest[:end]) or end
        part = rest[:cut].rstrip()
        if part:
            parts.append(part)
        rest = rest[cut:].lstrip()
    return parts
