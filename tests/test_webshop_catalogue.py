"""WebShop catalogues: the real-format loader on a fixture the test writes, the real attribute file
where it exists, goal generation (AgentGym's fork), and the synthetic generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentprm.envs.webshop.catalogue import (
    DATA_ENV_VAR,
    REAL_FILES,
    clean_products,
    get_catalogue,
    load_real_catalogue,
    make_goals,
    parse_options,
    parse_pricing,
    synthetic_catalogue,
)
from agentprm.envs.webshop.env import WebShopEnv
from agentprm.envs.webshop.synthetic import generate_raw
from agentprm.errors import UserError

# CI keeps shared data at ../shared/data from the repo root; a worktree may sit deeper, so look upwards.
SHARED_DATA = next(
    (
        d / "shared" / "data" / "webshop"
        for d in Path(__file__).resolve().parents[1].parents
        if (d / "shared" / "data" / "webshop").is_dir()
    ),
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "webshop",
)


def _raw(asin, name, pricing, query="Men's T-Shirts", options=None, small=None, **kw):
    d = {
        "asin": asin,
        "name": name,
        "full_description": f"{name}. Great product.",
        "small_description": small if small is not None else [f"{name} bullet one", "bullet two"],
        "pricing": pricing,
        "images": ["https://img/x.jpg"],
        "category": "fashion",
        "query": query,
        "product_category": "Clothing, Shoes & Jewelry › Men › Clothing › Shirts › T-Shirts",
        "customization_options": options,
        "brand": "Acme",
        "seller_id": "S1",
        "list_price": "$99",
    }
    d.update(kw)
    return d


def write_fixture(root: Path) -> None:
    """Three products in items_shuffle format (one duplicate, one 'nan' asin), attributes in
    items_ins_v2 format, human instructions in items_human_ins format."""
    products = [
        _raw(
            "B01SHIRT01",
            "Acme Men's Slim Fit T-Shirt",
            "$12.99",
            options={
                "Color": [{"value": "Navy Blue", "image": "u1"}, {"value": "Black/White", "image": None}],
                "Size": [{"value": "Small", "image": None}, {"value": "Large", "image": None}],
                "Style": None,
            },
        ),
        _raw("B01SHIRT01", "duplicate", "$1.00"),
        _raw("nan", "broken", "$1.00"),
        _raw("B02RANGE02", "Bolt Cotton Crew Neck Tee", "$10.00 - $20.00", small="single bullet string"),
        _raw("B03PRICEY3", "Zed Luxury Silk Shirt", "$985.50", options={}),
        _raw("B04NOPRICE", "Plain Tee", None, options=None),
    ]
    attributes = {
        "B01SHIRT01": {
            "attributes": ["slim fit", "machine wash"],
            "instruction": "Find me slim fit t-shirts",
            "instruction_attributes": ["slim fit"],
        },
        "B02RANGE02": {"attributes": ["crew neck"]},
        "B03PRICEY3": {"attributes": ["hand wash"]},
    }
    human = {
        "B01SHIRT01": [
            {
                "asin": "B01SHIRT01",
                "instruction": "i want a slim fit navy blue t-shirt in large.",
                "instruction_attributes": ["slim fit"],
                "instruction_options": ["navy blue", "large"],
                "assignment_id": "A1",
                "worker_id": "W1",
            },
            {
                "asin": "B01SHIRT01",
                "instruction": "a shirt please",
                "instruction_attributes": [],
                "instruction_options": [],
            },
        ],
        "B03PRICEY3": [
            {
                "asin": "B03PRICEY3",
                "instruction": "i need a hand wash silk shirt",
                "instruction_attributes": ["hand wash"],
                "instruction_options": [],
            }
        ],
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, obj in zip(REAL_FILES, (products, attributes, human)):
        (root / name).write_text(json.dumps(obj))


def test_real_format_loader_on_fixture(tmp_path):
    write_fixture(tmp_path)
    cat = load_real_catalogue(tmp_path, price_seed=0)
    assert cat.name.startswith("real:")
    assert [p["asin"] for p in cat.products] == ["B01SHIRT01", "B02RANGE02", "B03PRICEY3", "B04NOPRICE"]
    shirt = cat.by_asin["B01SHIRT01"]
    assert shirt["Title"] == "Acme Men's Slim Fit T-Shirt" and shirt["query"] == "men's t-shirts"
    assert shirt["options"] == {"color": ["navy blue", "black | white"], "size": ["small", "large"]}
    assert shirt["Price"] == "$12.99" and cat.prices["B01SHIRT01"] == 12.99
    assert shirt["Attributes"] == ["slim fit", "machine wash"] and shirt["Rating"] == "N.A."
    assert "seller_id" not in shirt and "brand" not in shirt  # clean_product_keys
    rng_item = cat.by_asin["B02RANGE02"]
    assert rng_item["Price"] == "$10.0 to $20.0" and 10.0 <= cat.prices["B02RANGE02"] <= 20.0
    assert rng_item["BulletPoints"] == ["single bullet string"]
    assert cat.by_asin["B04NOPRICE"]["Price"] == "$100.0" and cat.by_asin["B04NOPRICE"]["Attributes"] == ["DUMMY_ATTR"]
    # goals: the attribute-less instruction is skipped; 4 price bounds for the shirt (13.0 -> 20, 30, 40, 50);
    # the 985.50 shirt has < 2 bounds above it -> 4 goals with no price text (AgentGym's fork)
    assert len(cat.goals) == 8
    shirt_goals = sorted((g for g in cat.goals if g.asin == "B01SHIRT01"), key=lambda g: g.price_upper)
    assert [g.price_upper for g in shirt_goals] == [20.0, 30.0, 40.0, 50.0]
    assert (
        shirt_goals[0].instruction_text
        == "i want a slim fit navy blue t-shirt in large, and price lower than 20.00 dollars"
    )
    assert shirt_goals[0].goal_options == ("navy blue", "large") and shirt_goals[0].attributes == ("slim fit",)
    pricey = [g for g in cat.goals if g.asin == "B03PRICEY3"]
    assert len(pricey) == 4 and all(g.instruction_text == "i need a hand wash silk shirt" for g in pricey)
    # a seeded range price: same seed, same price
    assert load_real_catalogue(tmp_path, price_seed=0).prices == cat.prices


def test_env_on_real_format_fixture_plays_to_reward_one(tmp_path, monkeypatch):
    write_fixture(tmp_path)
    env = WebShopEnv(data=tmp_path)
    assert env.catalogue_name == f"real:{tmp_path.resolve()}"
    idx = next(i for i, g in enumerate(env.catalogue.goals) if g.asin == "B01SHIRT01")
    obs = env.reset(f"webshop_{idx}")
    assert obs.startswith("WebShop [SEP] Instruction: [SEP] i want a slim fit navy blue t-shirt")
    assert "b01shirt01" in env.step("search[slim fit t-shirt]").observation.lower()
    env.step("click[b01shirt01]")
    env.step("click[navy blue]")
    env.step("click[large]")
    res = env.step("click[buy now]")
    assert res.done and res.reward == 1.0 and env.is_success(res.reward, res.done)
    # the env var route builds the same catalogue
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert WebShopEnv().catalogue_name == env.catalogue_name


def test_loader_errors_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_real_catalogue(tmp_path / "nope")
    (tmp_path / REAL_FILES[0]).write_text("[]")
    with pytest.raises(UserError, match="items_ins_v2_1000.json, items_human_ins.json"):
        load_real_catalogue(tmp_path)


@pytest.mark.skipif(not (SHARED_DATA / "items_ins_v2_1000.json").is_file(), reason="shared WebShop data absent")
def test_real_attribute_file_parses():
    attrs = json.loads((SHARED_DATA / "items_ins_v2_1000.json").read_text())
    assert len(attrs) == 1000 and all(isinstance(v["attributes"], list) for v in attrs.values())
    # feed it through the cleaning and goal code with minimal products and its synthetic instructions
    # reshaped as human ones: attributes land on products, instructions with attributes become goals
    asins = sorted(attrs)[:60]
    raw = [_raw(a, f"Item {a}", "$25.00") for a in asins]
    human = {
        a: [
            {
                "instruction": attrs[a]["instruction"],
                "instruction_attributes": attrs[a]["instruction_attributes"],
                "instruction_options": [],
            }
        ]
        for a in asins
        if "instruction" in attrs[a]
    }
    products, prices = clean_products(raw, attrs, human)
    assert all(p["Attributes"] == attrs[p["asin"]]["attributes"] for p in products)
    goals = make_goals(products, prices)
    with_attrs = sum(bool(attrs[a]["instruction_attributes"]) for a in human)
    assert len(goals) == 4 * with_attrs > 0
    assert all(g.instruction_text.endswith("dollars") and "price lower than" in g.instruction_text for g in goals)


def test_pricing_and_option_parsing():
    assert parse_pricing("$5.99") == ([5.99], "$5.99")
    assert parse_pricing("$1,299.00") == ([1299.0], "$1299.0")
    assert parse_pricing("") == ([100.0], "$100.0")
    assert parse_options({"Flavor Name": [{"value": " Mint/Lime "}]}) == {"flavor name": ["mint | lime"]}


def test_synthetic_catalogue_is_deterministic_and_well_formed():
    a, b = generate_raw(3, per_type=2), generate_raw(3, per_type=2)
    assert a == b
    assert generate_raw(4, per_type=2) != a
    cat = get_catalogue(None, 0)
    assert cat.name == "synthetic-seed0" and 950 <= len(cat.products) <= 1100
    assert {p["category"] for p in cat.products} == {"beauty", "electronics", "fashion", "food", "furniture"}
    for g in cat.goals:
        p = cat.by_asin[g.asin]
        assert set(g.attributes) <= set(p["Attributes"])
        assert set(g.goal_options) <= {v for vals in p["options"].values() for v in vals}
        assert g.price_upper > cat.prices[g.asin]
    test_ids, train_ids = cat.split_indices("test"), cat.split_indices("train")
    assert test_ids == list(range(200)) and len(train_ids) > 1000 and not set(test_ids) & set(train_ids)
    # the same seed rebuilt from scratch gives the same goals in the same order
    assert synthetic_catalogue(0).goals == cat.goals


def test_cli_webshop_check_reports_the_catalogue(tmp_path):
    from typer.testing import CliRunner

    from agentprm.cli import app

    write_fixture(tmp_path)
    res = CliRunner().invoke(app, ["webshop-check", "--data", str(tmp_path), "--n", "3"])
    assert res.exit_code == 0, res.output
    assert f"real:{tmp_path.resolve()}" in res.output and "mean reward 1.000" in res.output
