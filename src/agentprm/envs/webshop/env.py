"""`WebShopEnv`: WebShop's text env (AgentGym's `WebAgentTextEnv`, observation mode "text") in-process.

Pages: search -> results (top 50, 10 a page, `< Prev`/`Next >`) -> item (option radio buttons,
Description/Features/Reviews sub-pages, `Buy Now`). Actions are `search[keywords]` and `click[value]`
with `value` one of the page's lower-cased clickables; the argument is lower-cased. Anything else is
invalid: nothing changes, reward 0, the same page is shown again. As in WebShop's text env, `search[...]`
works from every page. `click[buy now]` computes the reward (reward.py) and ends the episode.
Observations are WebShop's simple text mode: the page's visible strings joined by " [SEP] " (the done
page is abridged to the purchase and the score).

Task ids are AgentGym's `webshop_<i>`, the i-th of the shuffled goals (catalogue.py); `max_rounds` is 10
(AgentGym's evaluation setting; the paper says 6: pass `max_rounds=6`). The rollout loop enforces it,
as AgentGym's client does. The catalogue and its search index are built once per process and shared by
every env and clone; a clone copies only the session state.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
from dataclasses import dataclass, field
from typing import Any

from agentprm.envs.base import StepResult, check_split, parse_react_action
from agentprm.envs.webshop.catalogue import Catalogue, Goal, get_catalogue
from agentprm.envs.webshop.reward import Reward, get_reward, noun_tagger_name
from agentprm.envs.webshop.search import SearchEngine
from agentprm.errors import EnvError, UserError

PRODUCT_WINDOW = 10
SEP = " [SEP] "
BUY_NOW, NEXT_PAGE, PREV_PAGE, BACK_TO_SEARCH = "buy now", "next >", "< prev", "back to search"
SUB_PAGES = ("description", "features", "reviews")
_ACTION = re.compile(r"(.+)\[(.+)\]")

SYSTEM_PROMPT = """You are web shopping.
I will give you instructions about what to do.
You have to follow the instructions.
Every round I will give you an observation, you have to respond an action based on the state and instruction.
You can use search action if search is available.
You can click one of the buttons in clickables.
An action should be of the following structure:
search[keywords]
click[value]
If the action is not valid, perform nothing.
Keywords in search are up to you, but the value in click must be a value in the list of available actions.
Remember that your keywords in search should be carefully designed.
Your response should use the following format:

Thought:
I think ...

Action:
click[something]"""

_ENGINES: dict[int, tuple[Catalogue, SearchEngine]] = {}


def search_engine_for(catalogue: Catalogue) -> SearchEngine:
    """The catalogue's BM25 index, built once per process."""
    entry = _ENGINES.get(id(catalogue))
    if entry is None or entry[0] is not catalogue:
        entry = (catalogue, SearchEngine(catalogue.products))
        _ENGINES[id(catalogue)] = entry
    return entry[1]


@dataclass
class Session:
    """Everything one episode changes; `clone()` copies only this."""

    goal_idx: int = -1
    page: str = "search"  # search | results | item | description | features | reviews | done
    keywords: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)  # asins of the last search (top 50)
    page_num: int = 1
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    reward: Reward | None = None


class WebShopEnv:
    name = "webshop"
    system_prompt = SYSTEM_PROMPT

    def __init__(
        self,
        data: str | os.PathLike | None = None,
        max_rounds: int = 10,
        seed: int = 0,
        catalogue: Catalogue | None = None,
    ) -> None:
        """`data`: a real WebShop data dir (else `AGENTPRM_WEBSHOP_DATA`, else the synthetic catalogue);
        `seed`: synthetic catalogue seed and the seed for pricing price ranges."""
        if max_rounds < 1:
            raise UserError("max_rounds must be at least 1")
        self.catalogue = catalogue if catalogue is not None else get_catalogue(data, seed)
        self.engine = search_engine_for(self.catalogue)
        self.max_rounds = max_rounds
        self.s = Session()

    # -- identity ----------------------------------------------------------------------------------------
    @property
    def catalogue_name(self) -> str:
        return self.catalogue.name

    @property
    def noun_tagger(self) -> str:
        return noun_tagger_name()

    def describe(self) -> dict[str, Any]:
        """What a report should say about this env."""
        return {
            "env": self.name,
            "catalogue": self.catalogue_name,
            "products": len(self.catalogue.products),
            "goals": len(self.catalogue.goals),
            "noun_tagger": self.noun_tagger,
            "max_rounds": self.max_rounds,
        }

    # -- tasks -------------------------------------------------------------------------------------------
    def task_ids(self, split: str, n: int | None = None) -> list[str]:
        ids = [f"webshop_{i}" for i in self.catalogue.split_indices(check_split(split))]
        return ids if n is None else ids[:n]

    def goal_index(self, task_id: str) -> int:
        m = re.fullmatch(r"(?:webshop_)?(\d+)", str(task_id))
        if m is None or int(m.group(1)) >= len(self.catalogue.goals):
            raise UserError(
                f"unknown WebShop task {task_id!r}; use webshop_<i> with 0 <= i < {len(self.catalogue.goals)}"
            )
        return int(m.group(1))

    @property
    def goal(self) -> Goal:
        if self.s.goal_idx < 0:
            raise EnvError("WebShop env used before reset()")
        return self.catalogue.goals[self.s.goal_idx]

    # -- episode -----------------------------------------------------------------------------------------
    def reset(self, task_id: str) -> str:
        self.s = Session(goal_idx=self.goal_index(task_id))
        return self.observation()

    def step(self, action: str) -> StepResult:
        s = self.s
        if s.goal_idx < 0:
            raise EnvError("WebShop env used before reset()")
        if s.page == "done":
            raise EnvError("the WebShop episode has finished; call reset()")
        name, arg = parse_webshop_action(action)
        valid = True
        if name == "search" and arg:
            self._search(arg.split(" "), 1)
        elif name == "click" and arg != "search" and arg in self.clickables():
            self._click(arg)
        else:
            valid = False
        done = s.page == "done"
        reward = s.reward.total if (done and s.reward is not None) else 0.0
        info: dict[str, Any] = {"valid": valid, "page": s.page, "catalogue": self.catalogue_name}
        if done and s.reward is not None:
            info["reward_info"] = s.reward.info()
        return StepResult(self.observation(), reward, done, info)

    def _search(self, keywords: list[str], page_num: int) -> None:
        s = self.s
        s.keywords = keywords
        s.results = self.engine.search(keywords)
        s.page_num = page_num
        s.page = "results"
        s.asin = None
        s.options = {}

    def _click(self, arg: str) -> None:
        s = self.s
        if arg == BACK_TO_SEARCH:
            self.s = Session(goal_idx=s.goal_idx)
        elif arg == NEXT_PAGE and s.page == "results":
            self._search(s.keywords, s.page_num + 1)
        elif arg == PREV_PAGE and s.page == "results":
            self._search(s.keywords, s.page_num - 1)
        elif arg == PREV_PAGE and s.page in SUB_PAGES:
            s.page = "item"
        elif arg == PREV_PAGE and s.page == "item":
            self._search(s.keywords, s.page_num)
        elif arg == BUY_NOW and s.page == "item":
            self._buy()
        elif arg in SUB_PAGES and s.page == "item":
            s.page = arg
        elif s.page == "results":  # a product link
            s.asin = arg.upper()
            s.page = "item"
        elif s.page == "item":  # an option value; the radio group named last wins, as in the HTML dict
            s.options[self._option_names()[arg]] = arg

    def _asin(self) -> str:
        """The product whose page is open (the item page and its sub-pages are reached only by a click on one)."""
        assert self.s.asin is not None
        return self.s.asin

    def _buy(self) -> None:
        s = self.s
        product = self.catalogue.by_asin[self._asin()]
        s.reward = get_reward(product, self.goal, self.catalogue.prices[self._asin()], s.options)
        s.page = "done"

    def _option_names(self) -> dict[str, str]:
        product = self.catalogue.by_asin[self._asin()]
        return {v: name for name, values in product["options"].items() for v in values}

    # -- what the agent sees ----------------------------------------------------------------------------
    def page_products(self) -> list[str]:
        start = (self.s.page_num - 1) * PRODUCT_WINDOW
        return self.s.results[start : start + PRODUCT_WINDOW]

    def clickables(self) -> list[str]:
        """Lower-cased clickables of the current page (WebShop's `text_to_clickable` keys)."""
        s = self.s
        if s.page == "search":
            return ["search"]
        if s.page == "results":
            out = [BACK_TO_SEARCH]
            if s.page_num > 1:
                out.append(PREV_PAGE)
            if s.page_num * PRODUCT_WINDOW < len(s.results):
                out.append(NEXT_PAGE)
            return out + [a.lower() for a in self.page_products()]
        if s.page == "item":
            product = self.catalogue.by_asin[self._asin()]
            out = [BACK_TO_SEARCH, PREV_PAGE, *SUB_PAGES, BUY_NOW]
            return out + [v for values in product["options"].values() for v in values if v not in out]
        if s.page in SUB_PAGES:
            return [BACK_TO_SEARCH, PREV_PAGE]
        return []

    def available_actions(self) -> dict[str, Any]:
        """AgentGym's `/available_actions`: whether the page has a search bar, and its clickables."""
        return {"has_search_bar": self.s.page == "search", "clickables": self.clickables()}

    def observation(self) -> str:
        s = self.s
        instruction = self.goal.instruction_text
        if s.page == "search":
            return SEP.join(["WebShop", "Instruction:", instruction, "Search"])
        head = ["Instruction:", instruction, "Back to Search"]
        if s.page == "results":
            parts = [*head, f"Page {s.page_num} (Total results: {len(s.results)})"]
            if s.page_num > 1:
                parts.append("< Prev")
            if s.page_num * PRODUCT_WINDOW < len(s.results):
                parts.append("Next >")
            for asin in self.page_products():
                p = self.catalogue.by_asin[asin]
                parts += [asin, p["Title"], p["Price"]]
            return SEP.join(parts)
        product: dict[str, Any] = self.catalogue.by_asin[s.asin] if s.asin else {}
        if s.page == "item":
            parts = [*head, "< Prev"]
            for name, values in product["options"].items():
                parts += [name, *values]
            parts += [
                product["Title"],
                f"Price: {product['Price']}",
                f"Rating: {product['Rating']}",
                "Description",
                "Features",
                "Reviews",
                "Buy Now",
            ]
            return SEP.join(parts)
        if s.page == "description":
            return SEP.join([*head, "< Prev", product["Description"] or "No Description"])
        if s.page == "features":
            bullets = [b for b in product["BulletPoints"] if b]
            return SEP.join([*head, "< Prev", *(bullets or ["No Features"])])
        if s.page == "reviews":
            return SEP.join([*head, "< Prev"])
        reward = s.reward.total if s.reward else 0.0
        return SEP.join(
            [
                "Thank you for shopping with us!",
                "Your code:",
                "None",
                "(Paste it in your MTurk interface.)",
                "Purchased",
                "asin",
                s.asin or "",
                "options",
                json.dumps(s.options),
                "Reward",
                "Your score (min 0.0, max 1.0)",
                str(reward),
            ]
        )

    # -- protocol rest -----------------------------------------------------------------------------------
    def clone(self) -> WebShopEnv:
        other = copy.copy(self)  # shares catalogue and engine
        other.s = copy.deepcopy(self.s)
        return other

    def parse_action(self, text: str) -> str:
        """Text after the last `Action:`, whitespace squeezed; brackets and case kept (WebShop's client
        does not strip characters as the BabyAI/TextCraft clients do)."""
        return parse_react_action(text, keep=None)

    def is_success(self, reward: float, done: bool) -> bool:
        return reward >= 1.0

    def close(self) -> None:
        pass

    def sample_action(self, rng: random.Random) -> str:
        """A random plausible action: a search with random catalogue words, a click on a random
        clickable, and about 1 in 10 times an invalid action."""
        r = rng.random()
        if r < 0.1:
            return rng.choice(["click[not a button]", "search[]", "buy it", "click[]", "Search[shoes]"])
        clickables = [c for c in self.clickables() if c != "search"]
        if r < 0.35 or not clickables:
            words = rng.choice(self.catalogue.products)["Title"].lower().split()
            return f"search[{' '.join(rng.sample(words, min(len(words), rng.randint(1, 4))))}]"
        return f"click[{rng.choice(clickables)}]"


def parse_webshop_action(action: str) -> tuple[str, str | None]:
    """WebShop's `parse_action`: ("search", "keywords") for "search[keywords]"; the argument lower-cased."""
    m = _ACTION.match(action)
    if m is None:
        return action, None
    return m.group(1), m.group(2).lower()
