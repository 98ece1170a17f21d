"""WebShop's catalogue: products as `load_products` cleans them, human goals as AgentGym's fork makes them.

Two sources share one code path (`build_catalogue`):
- a user's real WebShop data dir (`items_shuffle_1000.json`, `items_ins_v2_1000.json`,
  `items_human_ins.json`), given as `data=PATH` or `AGENTPRM_WEBSHOP_DATA`;
- the offline default, a synthetic catalogue generated in code in the same raw format (`synthetic.py`).

Faithful to WebShop / AgentGym except where noted:
- a price range ("$a - $b") is priced uniformly in [a, b] with a *seeded* RNG (upstream: unseeded);
- goals: every human instruction with attributes gives one goal per price bound among the next 4
  multiples of 10 above the price (AgentGym's fork; upstream samples one bound); a product priced at
  980 or more has fewer than 2 bounds and, as in AgentGym, gives 4 identical goals with no price text
  and bound 1e6; the list is shuffled with `random.seed(233)`.
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentprm.envs.webshop.synthetic import PRODUCTS_PER_TYPE, generate_raw
from agentprm.errors import UserError

REAL_FILES = ("items_shuffle_1000.json", "items_ins_v2_1000.json", "items_human_ins.json")
DATA_ENV_VAR = "AGENTPRM_WEBSHOP_DATA"
PRICE_RANGE = [10.0 * i for i in range(1, 100)]
GOAL_SHUFFLE_SEED = 233
NO_PRICE_BOUND = 1000000
DUMMY_ATTR = "DUMMY_ATTR"
TEST_SIZE = 200  # AgentEval's WebShop test set size

# Keys `clean_product_keys` drops from a raw product.
_DROPPED_KEYS = (
    "product_information",
    "brand",
    "brand_url",
    "list_price",
    "availability_quantity",
    "availability_status",
    "total_reviews",
    "total_answered_questions",
    "seller_id",
    "seller_name",
    "fulfilled_by_amazon",
    "fast_track_message",
    "aplus_present",
    "small_description_old",
)


@dataclass(frozen=True)
class Goal:
    """One shopping task: what the instruction asks for and the product it was written about."""

    asin: str
    category: str
    query: str
    name: str
    product_category: str
    instruction_text: str
    attributes: tuple[str, ...]
    price_upper: float
    goal_options: tuple[str, ...]  # option values, as in items_human_ins ("instruction_options")


@dataclass
class Catalogue:
    """Cleaned products (WebShop's dict schema), their prices, the shuffled goals and the split ids."""

    name: str  # "synthetic-seed0" or "real:<dir>": every report says which catalogue it used
    products: list[dict[str, Any]]
    prices: dict[str, float]
    goals: list[Goal]
    by_asin: dict[str, dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_asin = {p["asin"]: p for p in self.products}

    def split_indices(self, split: str) -> list[int]:
        """Goal indices of a split.

        test: the first 200 shuffled goals (AgentEval's size). train: the rest, minus goals whose
        instruction also appears in test (AgentGym's 4 price bounds per instruction would otherwise leak
        test instructions into train; ids stay AgentGym's `webshop_<i>`).
        """
        n_test = min(TEST_SIZE, len(self.goals))
        if split == "test":
            return list(range(n_test))
        test_keys = {(g.asin, _base_instruction(g.instruction_text)) for g in self.goals[:n_test]}
        return [
            i
            for i in range(n_test, len(self.goals))
            if (self.goals[i].asin, _base_instruction(self.goals[i].instruction_text)) not in test_keys
        ]


def _base_instruction(text: str) -> str:
    return text.split(", and price lower than")[0]


# -- product cleaning (WebShop's load_products) ------------------------------------------------------


def parse_pricing(pricing: str | None) -> tuple[list[float], str]:
    """Price list and display tag from a raw pricing string ("$12.99", "$10.99 - $15.99")."""
    if not pricing:
        return [100.0], "$100.0"
    values = [float(Decimal(re.sub(r"[^\d.]", "", part))) for part in pricing.split("$")[1:]]
    if len(values) == 1:
        return values, f"${values[0]}"
    return values[:2], f"${values[0]} to ${values[1]}"


def parse_options(customization_options: dict[str, Any] | None) -> dict[str, list[str]]:
    """Option name (lower-cased) -> values, lower-cased with "/" shown as " | "."""
    options: dict[str, list[str]] = {}
    for name, contents in (customization_options or {}).items():
        if contents is None:
            continue
        options[name.lower()] = [c["value"].strip().replace("/", " | ").lower() for c in contents]
    return options


def clean_products(
    raw_products: list[dict[str, Any]],
    attributes: dict[str, dict[str, Any]],
    human_instructions: dict[str, list[dict[str, Any]]],
    price_seed: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """WebShop's `load_products` (human goals): cleaned products and their prices."""
    rng = random.Random(price_seed)
    seen: set[str] = set()
    products: list[dict[str, Any]] = []
    prices: dict[str, float] = {}
    for raw in raw_products:
        asin = raw.get("asin")
        if not isinstance(asin, str) or asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        p = {k: v for k, v in raw.items() if k not in _DROPPED_KEYS}
        p["Title"] = raw["name"]
        p["Description"] = raw.get("full_description") or ""
        small = raw.get("small_description")
        p["BulletPoints"] = small if isinstance(small, list) else [small or ""]
        p["Reviews"] = []
        p["Rating"] = "N.A."
        p["pricing"], p["Price"] = parse_pricing(raw.get("pricing"))
        p["options"] = parse_options(raw.get("customization_options"))
        attr = attributes.get(asin, {})
        p["Attributes"] = list(attr["attributes"]) if "attributes" in attr else [DUMMY_ATTR]
        if asin in human_instructions:
            p["instructions"] = human_instructions[asin]
        p["query"] = raw["query"].lower().strip()
        products.append(p)
        pricing = p["pricing"]
        prices[asin] = pricing[0] if len(pricing) == 1 else rng.uniform(*pricing[:2])
    return products, prices


def make_goals(products: list[dict[str, Any]], prices: dict[str, float]) -> list[Goal]:
    """AgentGym's human goals (one per price bound), shuffled with seed 233."""
    goals: list[Goal] = []
    for item in products:
        for ins in item.get("instructions", []):
            attrs = ins.get("instruction_attributes") or []
            if not attrs:
                continue  # upstream skips instructions without attributes
            bounds = [b for b in PRICE_RANGE if b > prices[item["asin"]]][:4]
            for i in range(4):
                if len(bounds) >= 2:
                    if i >= len(bounds):
                        continue
                    upper, price_text = bounds[i], f", and price lower than {bounds[i]:.2f} dollars"
                else:
                    upper, price_text = NO_PRICE_BOUND, ""
                goals.append(
                    Goal(
                        asin=item["asin"],
                        category=item["category"],
                        query=item["query"],
                        name=item["name"],
                        product_category=item["product_category"],
                        instruction_text=ins["instruction"].strip(".") + price_text,
                        attributes=tuple(attrs),
                        price_upper=upper,
                        goal_options=tuple(_option_values(ins.get("instruction_options"))),
                    )
                )
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return goals


def _option_values(options: Any) -> list[str]:
    if isinstance(options, dict):  # synthetic-goal style {name: value}
        return [str(v) for v in options.values()]
    return [str(o) for o in options or []]


def build_catalogue(
    name: str,
    raw_products: list[dict[str, Any]],
    attributes: dict[str, dict[str, Any]],
    human_instructions: dict[str, list[dict[str, Any]]],
    price_seed: int = 0,
) -> Catalogue:
    products, prices = clean_products(raw_products, attributes, human_instructions, price_seed)
    return Catalogue(name=name, products=products, prices=prices, goals=make_goals(products, prices))


# -- sources -------------------------------------------------------------------------------------------


def load_real_catalogue(data_dir: str | os.PathLike, price_seed: int = 0) -> Catalogue:
    """A user's real WebShop data dir holding the three files of the 1000-product set."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"WebShop data dir {root} does not exist; pass --data DIR or unset {DATA_ENV_VAR}")
    missing = [f for f in REAL_FILES if not (root / f).is_file()]
    if missing:
        raise UserError(f"WebShop data dir {root} lacks {', '.join(missing)}; it needs {', '.join(REAL_FILES)}")
    try:
        raw, attrs, human = (json.loads((root / f).read_text(encoding="utf-8")) for f in REAL_FILES)
    except json.JSONDecodeError as e:
        raise UserError(f"WebShop data in {root} is not valid JSON ({e}); re-download the files") from None
    if not isinstance(raw, list) or not isinstance(attrs, dict) or not isinstance(human, dict):
        raise UserError(f"WebShop data in {root} is not in WebShop's format (products list, two dicts)")
    cat = build_catalogue(f"real:{root.resolve()}", raw, attrs, human, price_seed)
    if not cat.goals:
        raise UserError(f"WebShop data in {root} yields no goals (no human instruction has attributes)")
    return cat


def synthetic_catalogue(seed: int = 0, per_type: int = PRODUCTS_PER_TYPE) -> Catalogue:
    """The offline default: `synthetic.py`'s generated raw files through the same code as a real data dir."""
    products, attributes, human = generate_raw(seed, per_type)
    return build_catalogue(f"synthetic-seed{seed}", products, attributes, human, price_seed=seed)


_CACHE: dict[tuple[str, int], Catalogue] = {}


def get_catalogue(data: str | os.PathLike | None = None, seed: int = 0) -> Catalogue:
    """The catalogue for `data` (a real data dir; None: `AGENTPRM_WEBSHOP_DATA`, else synthetic), built
    once per process."""
    if data is None:
        data = os.environ.get(DATA_ENV_VAR) or None
    key = ("synthetic" if data is None else str(Path(data).expanduser().resolve()), seed)
    if key not in _CACHE:
        if data is None:
            _CACHE[key] = synthetic_catalogue(seed)
        else:
            _CACHE[key] = load_real_catalogue(data, price_seed=seed)
    return _CACHE[key]
