"""Final-answer extraction and numeric comparison for the math step task.

A step ends the episode when it states a final answer: GSM8K's `#### N`, or "The answer is N" (what
pretrained chat models tend to write). The number is read the forgiving way GSM8K graders do: a
leading `$`, thousands commas, units and trailing punctuation are dropped ("#### $1,234.50 dollars."
is 1234.5); negatives and decimals are kept. Comparison is exact on rationals (`Fraction`), so "3.0"
equals "3" and no float rounding decides a reward.
"""

from __future__ import annotations

import re
from fractions import Fraction

# The last `####` wins (GSM8K's reference puts exactly one, at the end); "the answer is" in any case.
_HASH = re.compile(r"####")
_ANSWER_IS = re.compile(r"the\s+(?:final\s+)?answer\s+is\s*:?", re.IGNORECASE)
# A number as written in a solution: optional sign (ASCII or Unicode minus) and `$` in either order,
# digits with optional thousands commas, an optional decimal part, or a bare ".5".
_NUMBER = re.compile(r"(?P<sign>[-\u2212]?)\s*\$?\s*(?P<sign2>[-\u2212]?)(?P<num>\d[\d,]*(?:\.\d+)?|\.\d+)")


def has_final_answer(text: str) -> bool:
    """Whether `text` states a final answer (a marker, parsable or not): such a step ends the episode."""
    return bool(_HASH.search(text) or _ANSWER_IS.search(text))


def extract_answer(text: str) -> str | None:
    """The text after the final-answer marker (last `####`, else last "the answer is"), or None."""
    hashes = list(_HASH.finditer(text))
    if hashes:
        return text[hashes[-1].end() :].strip()
    said = list(_ANSWER_IS.finditer(text))
    if said:
        return text[said[-1].end() :].strip()
    return None


def parse_number(text: str | None) -> Fraction | None:
    """The first number in `text` with `$`, commas, units and punctuation stripped; None if there is none.

    Commas must group thousands ("1,234") to be dropped; "3,4" is read as 3 (a list, not a number).
    """
    if text is None:
        return None
    m = _NUMBER.search(text)
    if m is None:
        return None
    num = m.group("num")
    if "," in num:
        whole, _, frac = num.partition(".")
        groups = whole.split(",")
        if groups[0] and all(len(g) == 3 for g in groups[1:]) and len(groups[0]) <= 3:
            num = "".join(groups) + ("." + frac if frac else "")
        else:
            num = groups[0]
    value = Fraction(num)
    negative = bool(m.group("sign") or m.group("sign2"))
    return -value if negative else value


def final_answer(text: str) -> Fraction | None:
    """The number a step gives as its final answer, or None (no marker, or no number after it)."""
    return parse_number(extract_answer(text))


def answers_match(predicted: Fraction | None, reference: Fraction | str | int) -> bool:
    """Exact numeric equality; no answer never matches."""
    ref = reference if isinstance(reference, Fraction) else parse_number(str(reference))
    return predicted is not None and ref is not None and predicted == ref
