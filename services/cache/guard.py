"""The mismatch guard: reasons two similar-sounding prompts must not share an answer.

Embeddings place "turn on dark mode" and "turn off dark mode" next to each other; a
semantic cache that trusts similarity alone answers one with the other. The guard looks
for the differences that flip an answer and vetoes the hit when it finds one:

* negation ("not", "never", "can't", "without", ...) present in one prompt only;
* numbers (digits and number words, "2" == "two") that differ;
* dates (months, weekdays, "today" / "tomorrow", ...) that differ;
* named entities (capitalised or mixed-case words, acronyms) in one prompt only;
* units (km vs miles, °C vs °F, $ vs €, ...) that differ;
* opposite polarity on one axis: comparatives and superlatives ("cheapest" vs "most
  expensive"), and switch-like verbs ("turn on" vs "turn off", "enable" vs "disable").

Pure and deterministic; it errs towards a miss (a miss costs one model call, a false hit
hands out a wrong answer).
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["Mismatch", "MismatchKind", "find_mismatch"]


class MismatchKind(enum.Enum):
    NEGATION = "negation"
    NUMBER = "number"
    DATE = "date"
    ENTITY = "entity"
    UNIT = "unit"
    POLARITY = "polarity"


@dataclass(frozen=True, slots=True)
class Mismatch:
    kind: MismatchKind
    #: what differs, for logs and tests: e.g. "on vs off"
    detail: str


_WORD = re.compile(r"[^\W\d_][\w'\u2019\-\.]*\w|[^\W\d_]|\d[\d,]*(?:\.\d+)?|[$€£¥%°]")
_SENTENCE_END = re.compile(r"[.!?;:]\s*$")

_NEGATIONS = frozenset(
    "not no never none nothing nobody nowhere neither nor without cannot cant dont doesnt "
    "didnt isnt arent wasnt werent wont wouldnt shouldnt couldnt hasnt havent hadnt mustnt "
    "neednt aint unable".split()
)

_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
    "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000",
    "million": "1000000", "billion": "1000000000", "dozen": "12", "half": "0.5",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
    "once": "1x", "twice": "2x", "thrice": "3x", "single": "1", "double": "2x",
    "triple": "3x", "pair": "2",
}  # fmt: skip

_DATE_WORDS = {
    **{m: m[:3] for m in (
        "january february march april may june july august september october "
        "november december"
    ).split()},
    **{m: m for m in "jan feb mar apr jun jul aug sep sept oct nov dec".split()},
    **{d: d[:3] for d in "monday tuesday wednesday thursday friday saturday sunday".split()},
    "today": "today", "tonight": "today", "tomorrow": "tomorrow", "yesterday": "yesterday",
    "weekend": "weekend", "morning": "morning", "afternoon": "afternoon",
    "evening": "evening", "night": "night", "spring": "spring", "summer": "summer",
    "autumn": "autumn", "fall": "autumn", "winter": "winter", "christmas": "christmas",
    "easter": "easter", "now": "now", "currently": "now", "last": "last", "next": "next",
    "previous": "last", "upcoming": "next", "ago": "ago",
}  # fmt: skip
#: "may" and "march" are also verbs; only counted next to a number or "in"/"of"
_AMBIGUOUS_DATES = frozenset({"may", "march", "fall", "last", "next", "second"})

_UNITS = {
    "km": "km", "kilometer": "km", "kilometers": "km", "kilometre": "km", "kilometres": "km",
    "mile": "mile", "miles": "mile", "mi": "mile", "mph": "mph", "kph": "km/h", "kmh": "km/h",
    "m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "cm": "cm", "centimeter": "cm", "centimeters": "cm", "mm": "mm", "millimeter": "mm",
    "millimeters": "mm",
    "ft": "ft", "foot": "ft", "feet": "ft", "inch": "in", "inches": "in", "yard": "yd",
    "yards": "yd",
    "kg": "kg", "kilogram": "kg", "kilograms": "kg", "kilo": "kg", "kilos": "kg",
    "g": "g", "gram": "g", "grams": "g", "mg": "mg", "lb": "lb", "lbs": "lb",
    "pound": "lb", "pounds": "lb", "oz": "oz", "ounce": "oz", "ounces": "oz", "ton": "t",
    "tons": "t", "tonne": "t", "tonnes": "t",
    "l": "l", "liter": "l", "liters": "l", "litre": "l", "litres": "l", "ml": "ml",
    "gallon": "gal", "gallons": "gal", "cup": "cup", "cups": "cup",
    "degree": "deg", "degrees": "deg", "celsius": "C", "centigrade": "C",
    "fahrenheit": "F", "kelvin": "K", "°": "deg",
    "$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD", "€": "EUR", "eur": "EUR",
    "euro": "EUR", "euros": "EUR", "£": "GBP", "gbp": "GBP", "¥": "JPY", "yen": "JPY",
    "yuan": "CNY", "rupee": "INR", "rupees": "INR", "%": "%", "percent": "%",
    "gb": "GB", "gigabyte": "GB", "gigabytes": "GB", "mb": "MB", "megabyte": "MB",
    "megabytes": "MB", "tb": "TB", "terabyte": "TB", "terabytes": "TB", "kb": "KB",
    "byte": "B", "bytes": "B", "ghz": "GHz", "mhz": "MHz", "hz": "Hz",
    "w": "W", "watt": "W", "watts": "W", "kw": "kW", "kwh": "kWh", "v": "V", "volt": "V",
    "volts": "V",
    "second": "s", "seconds": "s", "sec": "s", "secs": "s", "minute": "min",
    "minutes": "min", "min": "min", "mins": "min", "hour": "h", "hours": "h", "hr": "h",
    "hrs": "h", "day": "day", "days": "day", "week": "week", "weeks": "week",
    "month": "month", "months": "month", "year": "year", "years": "year",
}  # fmt: skip
_DEGREE_SCALES = {"c": "C", "f": "F", "k": "K"}
#: single letters and "second" are units only right after a number
_NUMERIC_ONLY_UNITS = frozenset({"m", "g", "l", "w", "v", "mi", "min", "second", "in"})

# axis -> (words meaning "+", words meaning "-"); checked on single words
_POLAR_WORDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    axis: (frozenset(plus.split()), frozenset(minus.split()))
    for axis, plus, minus in (
        ("price", "expensive priciest pricier costlier costliest dearest",
         "cheap cheaper cheapest inexpensive affordable"),
        ("quality", "best better greatest top finest", "worst worse poorest"),
        ("size", "largest larger biggest bigger big large huge longest longer tallest taller "
         "widest wider heaviest heavier", "smallest smaller small little tiny shortest shorter "
         "narrowest narrower lightest lighter"),
        ("level", "highest higher high maximum max most more above over increase increasing "
         "raise upper", "lowest lower low minimum min least less fewer below under decrease "
         "decreasing reduce lower"),
        ("speed", "fastest faster fast quickest quicker", "slowest slower slow"),
        ("age", "oldest older old earliest earlier", "newest newer new youngest younger "
         "latest later recent"),
        ("temperature", "hottest hotter hot warmest warmer warm", "coldest colder cold coolest "
         "cooler cool"),
        ("distance", "farthest farther furthest further far", "nearest nearer closest closer "
         "near"),
        ("ease", "easiest easier easy simplest simpler", "hardest harder hard difficult "
         "toughest tougher"),
        ("switch", "on enable enabled enabling activate activated start starting open opened "
         "unlock lock-in show connect", "off disable disabled disabling deactivate deactivated "
         "stop stopping close closed lock hide disconnect"),
        ("direction", "up upward upwards increase ascending asc north import upload buy "
         "install include add accept allow", "down downward downwards decrease descending desc "
         "south export download sell uninstall exclude remove delete reject deny block"),
        ("order", "before prior pre", "after post"),
        ("truth", "true correct right valid legal safe", "false incorrect wrong invalid "
         "illegal unsafe"),
        ("gain", "profit gain win pros advantages benefits", "loss lose losses cons "
         "disadvantages drawbacks"),
        ("sign", "positive plus", "negative minus"),
        ("side", "left", "right"),
        ("compass", "east", "west"),
        ("entry", "enter login log-in signin sign-in", "exit logout log-out signout sign-out"),
    )
}  # fmt: skip
#: "most expensive" is "+" on the price axis, "least expensive" is "-"
_DEGREE_FLIP = {"least": True, "less": True, "most": False, "more": False}

_COMMON_CAPITALISED = frozenset(
    "i im ive id ill what how why when where who whom which whose is are was were do does "
    "did can could would should will shall may might must please tell give explain describe "
    "list show find write the a an in on at for of to from with and or but if my your our "
    "their his her its this that these those there here hi hello hey ok okay yes no".split()
)


@dataclass(frozen=True, slots=True)
class _Features:
    negated: bool
    numbers: Counter[str]
    dates: frozenset[str]
    entities: frozenset[str]
    #: capitalised words that start a sentence: names or just capitals, can't tell
    openers: frozenset[str]
    compact: str
    #: in order of appearance: "Celsius in Fahrenheit" is not "Fahrenheit in Celsius"
    units: tuple[str, ...]
    #: (number, unit) in order of appearance: "5 km to miles" is not "5 miles to km"
    quantities: tuple[tuple[str, str], ...]
    polarity: dict[str, frozenset[str]]


def _plain(word: str) -> str:
    return word.lower().replace("\u2019", "'").rstrip(".").removesuffix("'s")


def _compact(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def _features(text: str) -> _Features:
    tokens = [(m.group(0), m.start()) for m in _WORD.finditer(text)]
    words = [_plain(t) for t, _ in tokens]
    negated = False
    numbers: Counter[str] = Counter()
    dates: set[str] = set()
    entities: set[str] = set()
    units: list[str] = []
    quantities: list[tuple[str, str]] = []
    openers: set[str] = set()
    polar: dict[str, set[str]] = {}
    for i, ((raw, start), word) in enumerate(zip(tokens, words, strict=True)):
        previous = words[i - 1] if i else ""
        after_number = bool(previous) and (previous[0].isdigit() or previous in _NUMBER_WORDS)
        bare = word.replace("'", "")
        if bare in _NEGATIONS or word.endswith("n't"):
            negated = True
        if raw[0].isdigit():
            numbers[raw.replace(",", "").rstrip(".")] += 1
        elif word in _NUMBER_WORDS and not (word == "second" and previous in _NUMBER_WORDS):
            numbers[_NUMBER_WORDS[word]] += 1
        if word in _DATE_WORDS and (
            word not in _AMBIGUOUS_DATES
            or after_number
            or previous in ("in", "of", "on", "since", "until", "by", "this", "every")
            or (i + 1 < len(words) and words[i + 1][:1].isdigit())
        ):
            dates.add(_DATE_WORDS[word])
        unit = _UNITS.get(word) if word not in _NUMERIC_ONLY_UNITS or after_number else None
        if previous == "°" and word in _DEGREE_SCALES:
            unit = _DEGREE_SCALES[word]
        if unit is not None:
            if unit not in units:
                units.append(unit)
            if after_number or previous == "°":
                quantities.append((_NUMBER_WORDS.get(previous, previous.replace(",", "")), unit))
        for axis, (plus, minus) in _POLAR_WORDS.items():
            sign = "+" if word in plus else "-" if word in minus else None
            if sign is None:
                continue
            if previous in _DEGREE_FLIP and axis != "level":
                if _DEGREE_FLIP[previous]:
                    sign = "-" if sign == "+" else "+"
            polar.setdefault(axis, set()).add(sign)
        sentence_start = i == 0 or bool(_SENTENCE_END.search(text[:start]))
        if raw[0].isalpha() and bare not in _COMMON_CAPITALISED:
            mixed = any(c.isupper() for c in raw[1:]) or any(c.isdigit() for c in raw)
            if mixed or (raw[0].isupper() and not sentence_start):
                entities.add(word)
            elif raw[0].isupper():
                openers.add(word)
    compact = _compact(text)
    return _Features(
        negated=negated,
        numbers=numbers,
        dates=frozenset(dates),
        entities=frozenset(entities),
        openers=frozenset(openers),
        compact=compact,
        units=tuple(units),
        quantities=tuple(quantities),
        polarity={axis: frozenset(signs) for axis, signs in polar.items()},
    )


def _unmatched_entities(mine: _Features, theirs: _Features) -> list[str]:
    # a paraphrase may spell an entity differently ("Hugging Face" / "HuggingFace") or
    # start a sentence with it; an entity counts as present when its letters appear
    return sorted(e for e in mine.entities if _compact(e) not in theirs.compact)


def find_mismatch(query: str, cached: str) -> Mismatch | None:
    """The first reason ``cached``'s answer must not be given to ``query``, or None.

    Symmetric in which reasons it finds; checked in the order of the module docstring.
    """
    a, b = _features(query), _features(cached)
    if a.negated != b.negated:
        return Mismatch(MismatchKind.NEGATION, "negated" if a.negated else "not negated")
    if a.numbers != b.numbers:
        return Mismatch(
            MismatchKind.NUMBER, f"{sorted(a.numbers.elements())} vs {sorted(b.numbers.elements())}"
        )
    if a.dates != b.dates:
        return Mismatch(MismatchKind.DATE, f"{sorted(a.dates)} vs {sorted(b.dates)}")
    if a.units != b.units or a.quantities != b.quantities:
        return Mismatch(MismatchKind.UNIT, f"{list(a.quantities)} vs {list(b.quantities)}")
    for axis in a.polarity.keys() & b.polarity.keys():
        if a.polarity[axis] != b.polarity[axis]:
            return Mismatch(
                MismatchKind.POLARITY,
                f"{axis}: {''.join(sorted(a.polarity[axis]))} vs "
                f"{''.join(sorted(b.polarity[axis]))}",
            )
    missing = _unmatched_entities(a, b) + _unmatched_entities(b, a)
    if missing:
        return Mismatch(MismatchKind.ENTITY, ", ".join(missing))
    # a sentence-opening capital may be a name ("Zurich weather") or just grammar
    # ("Evaluate is a tool"); only a swap of one for another counts
    swapped_a = [w for w in a.openers if _compact(w) not in b.compact]
    swapped_b = [w for w in b.openers if _compact(w) not in a.compact]
    if swapped_a and swapped_b:
        return Mismatch(MismatchKind.ENTITY, ", ".join(sorted(swapped_a + swapped_b)))
    return None
