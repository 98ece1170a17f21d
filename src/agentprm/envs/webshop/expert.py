"""The oracle shopper that makes WebShop demos: it knows the goal and plays by the page rules.

It searches with the instruction text, opens the goal product when the results list it (paging with
`Next >` while the round budget allows), else the listed product with the best reward it could reach,
picks the options that match the goal's, and buys. Every action goes through `env.step`, so a demo is
exactly what the env would show an agent. The outputs are ReAct turns ("Thought:\n...\n\nAction:\n...").

`thought_style` (the demos' `--thought-style`) sets how a turn writes what it clicks; the choices, the
thoughts' wording and the rewards are the same:
- `full` (the default, as before): every click names WebShop's lower-cased clickable key
  (`click[b0uauztd1s]`, `click[buy now]`), while the thought names the id as the page shows it (upper case).
- `page`: every click names the clickable as the page shows it (`click[B0UAUZTD1S]`, `click[Buy Now]`);
  the env lower-cases the argument, so it is the same action. The id then reads the same in the
  observation, the thought and the action, so a policy can copy it instead of changing its case through
  unrelated BPE pieces (docs/webshop.md, "Copying product ids").
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from agentprm.envs.webshop.env import BUY_NOW, NEXT_PAGE, PRODUCT_WINDOW, WebShopEnv
from agentprm.envs.webshop.reward import get_reward, normalize_color, token_set_ratio
from agentprm.errors import UserError
from agentprm.trajectory import Compute, Step, Trajectory

THOUGHT_STYLES = ("full", "page")
# How the pages show the fixed clickables the oracle uses (env.observation); ids show as their asin.
_SHOWN = {NEXT_PAGE: "Next >", BUY_NOW: "Buy Now"}


@dataclass
class Plan:
    asin: str
    rank: int  # position in the search results (0-based)
    options: dict[str, str]  # option name -> value to click
    expected_reward: float


def choose_options(product: dict, goal_options: tuple[str, ...]) -> dict[str, str]:
    """For each of the product's option groups, the value that best matches a goal option (reward's
    matching rule: token_set_ratio > 85 after normalize_color); groups with no match are left unset."""
    chosen: dict[str, str] = {}
    for name, values in product["options"].items():
        best, best_score = None, 85
        for g in goal_options:
            for v in values:
                score = 101 if v == g else token_set_ratio(normalize_color(v), normalize_color(g))
                if score > best_score:
                    best, best_score = v, score
        if best is not None:
            chosen[name] = best
    return chosen


def plan_purchase(env: WebShopEnv, results: list[str], rounds_left: int) -> Plan | None:
    """The goal product if reachable within `rounds_left` (Next clicks + open + options + buy), else the
    reachable listed product with the highest reward."""
    goal, cat = env.goal, env.catalogue
    best: Plan | None = None
    for rank, asin in enumerate(results):
        product = cat.by_asin[asin]
        options = choose_options(product, goal.goal_options)
        cost = rank // PRODUCT_WINDOW + 1 + len(options) + 1
        if cost > rounds_left:
            continue
        if asin == goal.asin:
            return Plan(asin, rank, options, 1.0)
        r = get_reward(product, goal, cat.prices[asin], options).total
        if best is None or r > best.expected_reward:
            best = Plan(asin, rank, options, r)
    return best


_SEARCH_THOUGHTS = (
    "I should search for the product described in the instruction.",
    "Let me search using the words of the instruction.",
    "I will start by searching for what the instruction asks for.",
)


def expert_trajectory(env: WebShopEnv, task_id: str, seed: int = 0, thought_style: str = "full") -> Trajectory:
    """Run the oracle on `task_id` and return its trajectory (successful or not); `thought_style`: module doc."""
    if thought_style not in THOUGHT_STYLES:
        raise UserError(f"unknown thought style {thought_style!r}; choose one of {', '.join(THOUGHT_STYLES)}")
    as_shown = thought_style == "page"

    def click(key: str, shown: str | None = None) -> str:
        return f"click[{(shown or _SHOWN.get(key, key)) if as_shown else key}]"

    rng = random.Random(f"{task_id}/{seed}")
    first = env.reset(task_id)
    goal = env.goal
    steps: list[Step] = []
    obs = first
    status = "max_rounds"
    reward = 0.0

    def act(thought: str, action: str) -> bool:
        nonlocal obs, status, reward
        res = env.step(action)
        steps.append(
            Step(
                t=len(steps),
                observation=obs,
                output=f"Thought:\n{thought}\n\nAction:\n{action}",
                action=action,
                reward=res.reward,
                done=res.done,
                info=dict(res.info),
            )
        )
        obs = res.observation
        if res.done:
            status, reward = "done", res.reward
        return res.done

    query = goal.instruction_text.lower()
    act(rng.choice(_SEARCH_THOUGHTS), f"search[{query}]")
    plan = plan_purchase(env, list(env.s.results), env.max_rounds - len(steps))
    if plan is not None:
        for _ in range(plan.rank // PRODUCT_WINDOW):
            act("The product I want is not on this page; let me look at the next page.", click(NEXT_PAGE))
        act(
            f"{plan.asin} looks like what the instruction asks for. Let me open it.",
            click(plan.asin.lower(), plan.asin),
        )
        for name, value in plan.options.items():
            act(f"The instruction asks for {value}, so I select it for {name}.", click(value))
        act("The product and options match the instruction. I will buy it.", click(BUY_NOW))
    success = env.is_success(reward, status == "done")
    return Trajectory(
        id=f"{task_id}-expert-{seed}",
        env=env.name,
        task_id=task_id,
        system_prompt=env.system_prompt,
        first_observation=first,
        steps=steps,
        policy="webshop-oracle",
        seed=seed,
        reward=reward,
        success=success,
        status=status,
        final_observation=obs,
        compute=Compute(env_steps=len(steps)),
        meta={
            "catalogue": env.catalogue_name,
            "group": goal.category,
            "goal_asin": goal.asin,
            "found_goal": plan is not None and plan.asin == goal.asin,
        },
    )


@dataclass
class OracleReport:
    catalogue: str
    split: str
    n: int
    mean_reward: float
    success_rate: float
    found_goal_rate: float  # share of episodes that bought the goal product itself
    goal_top10_rate: float  # share of these goals whose product ranks in the top 10 for its instruction


def oracle_report(env: WebShopEnv, split: str = "test", n: int | None = None, progress=None) -> OracleReport:
    """Run the oracle on the first `n` tasks of `split`; `progress(i)` is called after each episode."""
    ids = env.task_ids(split, n)
    rewards, successes, found, top10 = [], 0, 0, 0
    for i, task_id in enumerate(ids):
        traj = expert_trajectory(env, task_id, 0)
        rewards.append(traj.reward)
        successes += traj.success
        found += traj.meta["found_goal"]
        goal = env.goal
        top10 += goal.asin in env.engine.search(goal.instruction_text.lower().split(" "))[:PRODUCT_WINDOW]
        if progress is not None:
            progress(i)
    k = max(len(ids), 1)
    return OracleReport(env.catalogue_name, split, len(ids), sum(rewards) / k, successes / k, found / k, top10 / k)
