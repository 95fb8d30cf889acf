"""Synthetic multi-turn conversations whose last question needs a fact stated earlier.

Each conversation is ``length`` turns (user and assistant alternate, user first) of
filler exchanges on everyday topics with long-ish assistant answers, as real chats have.
One user turn, ``distance`` turns before the end, states the needed fact; the assistant
acknowledges it without repeating the value. Distractor turns state the same kind of fact
about other people or things (other values). The new prompt asks for the fact in other
words than it was stated. Fact recall = the fact's value appears in what a strategy sends
before the prompt.

Deterministic for a seed (``numpy.random.Generator``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Conversation", "make_conversation", "make_set"]


@dataclass(frozen=True, slots=True)
class Conversation:
    turns: tuple[tuple[str, str], ...]  # (role, content), oldest first
    question: str
    value: str  # what must still be in the context
    distance: int  # turns from the fact to the end (2: the second-to-last turn)
    category: str


# (category, statement, question, distractor statements, values)
_FACTS: list[tuple[str, str, str, tuple[str, ...], tuple[str, ...]]] = [
    (
        "city",
        "By the way, my sister Alice moved to {v} last month.",
        "Which city does my sister live in now?",
        ("My cousin Paul has lived in {v} for years.", "My old roommate just moved to {v}."),
        ("Lyon", "Porto", "Leipzig", "Krakow", "Bergen", "Ghent", "Turin", "Brno"),
    ),
    (
        "pet",
        "We adopted a puppy this weekend and named him {v}.",
        "What did we call our new dog?",
        ("My neighbour's cat is called {v}.", "My parents had a parrot named {v}."),
        ("Biscuit", "Pepper", "Ziggy", "Mochi", "Bruno", "Waffles", "Juniper", "Noodle"),
    ),
    (
        "time",
        "My flight to Oslo on Friday leaves at {v}.",
        "When does my plane take off?",
        ("The train back on Sunday leaves at {v}.", "My sister's bus arrives at {v}."),
        ("6:40", "7:15", "9:05", "11:50", "13:25", "16:10", "18:35", "21:20"),
    ),
    (
        "code",
        "The door code for the new office is {v}.",
        "What was the code to get into the office?",
        ("My bike lock combination is {v}.", "The gym locker I use is number {v}."),
        ("4817", "9302", "5561", "2749", "6038", "1195", "7426", "3680"),
    ),
    (
        "allergy",
        "Just so you know, I'm seriously allergic to {v}.",
        "Which food do I need to avoid because of my allergy?",
        ("My son simply doesn't like {v}.", "My partner is trying to eat less {v}."),
        ("peanuts", "shellfish", "sesame", "kiwi", "celery", "mustard", "lupin", "buckwheat"),
    ),
    (
        "budget",
        "Our budget for the kitchen renovation is {v} euros.",
        "How much money can we spend on the kitchen?",
        ("Last year the garden cost us {v} euros.", "The neighbours paid {v} euros for theirs."),
        ("18,500", "24,000", "9,750", "31,200", "12,800", "27,400", "15,300", "21,900"),
    ),
    (
        "date",
        "My dentist appointment is on {v}.",
        "When am I seeing the dentist?",
        ("My brother's birthday party is on {v}.", "The car goes in for service on {v}."),
        (
            "March 14",
            "April 3",
            "May 27",
            "June 9",
            "July 22",
            "August 5",
            "September 18",
            "October 30",
        ),
    ),
    (
        "room",
        "The quarterly review meeting will be in room {v}.",
        "Where is the quarterly review being held?",
        ("The training session is in room {v}.", "Lunch is served in room {v} today."),
        ("B214", "C107", "A330", "D402", "E118", "F225", "G306", "H019"),
    ),
]

_TOPICS = [
    "sourdough bread",
    "Python decorators",
    "the French Revolution",
    "marathon training",
    "houseplants",
    "solar panels",
    "chess openings",
    "jazz history",
    "budget travel in Japan",
    "learning Spanish",
    "home espresso",
    "watercolour painting",
    "sleep hygiene",
    "container gardening",
    "bicycle maintenance",
    "public speaking",
    "time management",
    "composting",
    "camping in the rain",
    "writing a CV",
    "baking croissants",
    "SQL indexes",
    "birdwatching",
    "meal prepping",
    "interval training",
    "saving for retirement",
]
_QUESTIONS = [
    "Can you give me some tips on {t}?",
    "What should a beginner know about {t}?",
    "Explain {t} briefly, please.",
    "What are common mistakes people make with {t}?",
    "Is {t} worth getting into?",
]
_SENTENCES = [
    "Start small and build the habit over a few weeks rather than all at once.",
    "Most problems come from skipping the basics, so it pays to learn them properly.",
    "Keep notes on what you try; patterns become obvious after a while.",
    "Good tools help, but technique matters far more than equipment.",
    "Expect the first attempts to be disappointing; that is normal and part of learning.",
    "Ask people who have done it for years; they usually enjoy sharing what they know.",
    "Set a regular time for it, because consistency beats intensity.",
    "Read one good introductory book before spending money on courses.",
    "Measure your progress every month so you can see what actually works.",
    "Avoid changing too many things at once, or you will not know what helped.",
    "Online communities are useful, but check advice against reliable sources.",
    "Take breaks: rest is when a lot of the improvement happens.",
]
_ACKS = [
    "Got it, thanks for letting me know.",
    "Noted, I'll keep that in mind.",
    "Thanks, that's good to know.",
    "Understood.",
]


def _filler(rng: np.random.Generator) -> tuple[tuple[str, str], tuple[str, str]]:
    topic = _TOPICS[rng.integers(len(_TOPICS))]
    question = _QUESTIONS[rng.integers(len(_QUESTIONS))].format(t=topic)
    count = int(rng.integers(2, 6))
    picked = rng.choice(len(_SENTENCES), size=count, replace=False)
    answer = f"Here are a few thoughts on {topic}. " + " ".join(_SENTENCES[i] for i in picked)
    return ("user", question), ("assistant", answer)


def make_conversation(
    rng: np.random.Generator, *, length: int, distance: int, category: int, distractors: int = 2
) -> Conversation:
    """A ``length``-turn conversation with its fact ``distance`` turns before the end."""
    if length % 2 or distance % 2 or not 2 <= distance <= length:
        raise ValueError("length and distance must be even, 2 <= distance <= length")
    name, statement, question, others, values = _FACTS[category % len(_FACTS)]
    order = rng.permutation(len(values))
    value = values[order[0]]
    turns: list[tuple[str, str]] = []
    for _ in range(length // 2):
        turns.extend(_filler(rng))
    fact_at = length - distance
    turns[fact_at] = ("user", statement.format(v=value))
    turns[fact_at + 1] = ("assistant", _ACKS[rng.integers(len(_ACKS))])
    free = [i for i in range(0, length, 2) if i != fact_at]
    for n, i in enumerate(rng.choice(free, size=min(distractors, len(free)), replace=False)):
        turns[i] = ("user", others[n % len(others)].format(v=values[order[1 + n]]))
        turns[i + 1] = ("assistant", _ACKS[rng.integers(len(_ACKS))])
    return Conversation(tuple(turns), question, value, distance, name)


def make_set(
    seed: int, *, lengths: tuple[int, ...], distances: tuple[int, ...], per_cell: int
) -> list[Conversation]:
    """``per_cell`` conversations per (length, distance) with distance < length, categories
    cycling so each cell covers several kinds of fact."""
    rng = np.random.default_rng(seed)
    out = []
    category = 0
    for length in lengths:
        for distance in distances:
            if distance >= length:
                continue
            for _ in range(per_cell):
                out.append(
                    make_conversation(rng, length=length, distance=distance, category=category)
                )
                category += 1
    return out
