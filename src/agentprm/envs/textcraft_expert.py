"""TextCraft expert: plans from the crafting commands shown in the observation and writes ReAct turns.

The planner reads only the observation text (never the env's hidden recipe data or goal):
1. parse every `craft N OUTPUT using k1 IN1, k2 IN2` line and the `Goal: craft X.` line;
2. resolve each ingredient: an item some line crafts is crafted; a generic ingredient (no line crafts
   it, but lines craft items named `... <ingredient>`, e.g. `oak planks` for `planks`, that are not
   made from it) is replaced by one such item; anything else is fetched with `get`;
3. choose, per item, the recipe (and per generic, the item) with the fewest rounds, ties by the seed;
4. add up the amounts from the goal down (a craft yields the recipe's output count, and counts must be
   exact, so an item needing q of an output of c takes ceil(q / c) separate crafts);
5. emit `get` for each base item (all at once up front, or just before first needed; the seed picks)
   and the crafts in dependency order (independent branches in a seed-dependent order).

Every turn is "Thought: ...\\nAction: ..." with a thought saying why (these turns are SFT data).
`thought_style="full"` (the default) opens with an overview of the plan and varies its wording;
`"brief"` writes one short sentence naming the immediate sub-goal ("I need 2 stick for wooden shovel.",
with "(2 of 3)" on repeated crafts), after the goal's recipe in the first turn only ("To craft wooden
shovel I need 2 stick, 1 planks."), so the action tokens are a larger share of a small policy's SFT loss;
`"none"` writes only "Action: ..." (AgentGym's parser reads the text after `Action:`; a thought is not
required), for a from-scratch policy too small to plan in words.
If the env refuses an action anyway, the expert records it and stops: a failed demo is reported, never
hidden (the demos command keeps only successes unless asked).

`TextCraftStateExpert` acts from any mid-episode state instead (DAgger's labeller, `agentprm dagger`): it
reads the env's inventory, answers the demo's own turn where the state is on the demo's path, and
otherwise plans again from the holdings (see its doc).
"""

from __future__ import annotations

import math
import random
import re
import uuid
from dataclasses import dataclass, field

from agentprm.envs.state_expert import ExpertTurn
from agentprm.errors import UserError
from agentprm.trajectory import Step, Trajectory

_LINE = re.compile(r"craft (\d+) (.+?) using (.+)")
_GOAL = re.compile(r"Goal: craft (.+)\.\s*$", re.MULTILINE)
_ING = re.compile(r"(\d+) (.+)")


@dataclass(frozen=True)
class ShownRecipe:
    output: str
    count: int
    inputs: tuple[tuple[int, str], ...]  # (count, item text) in the line's order

    @property
    def line(self) -> str:
        ins = ", ".join(f"{k} {name}" for k, name in self.inputs)
        return f"craft {self.count} {self.output} using {ins}"


def parse_observation(text: str) -> tuple[dict[str, list[ShownRecipe]], str]:
    """(recipes shown, by output item text, in the order shown; the goal item text)."""
    recipes: dict[str, list[ShownRecipe]] = {}
    for raw in text.splitlines():
        m = _LINE.fullmatch(raw.strip())
        if m is None:
            continue
        inputs = []
        for part in m.group(3).split(", "):
            im = _ING.fullmatch(part.strip())
            if im is None:
                break
            inputs.append((int(im.group(1)), im.group(2)))
        else:
            r = ShownRecipe(m.group(2), int(m.group(1)), tuple(inputs))
            recipes.setdefault(r.output, []).append(r)
    goal = _GOAL.search(text)
    if goal is None:
        raise ValueError("no 'Goal: craft ...' line in the observation")
    return recipes, goal.group(1)


@dataclass
class Plan:
    """The chosen way to make the goal: actions in order, with what each is for."""

    goal: str
    recipe_of: dict[str, ShownRecipe]  # item -> the recipe used for it
    generic: dict[str, str]  # generic ingredient -> the concrete item used
    need: dict[str, int]  # item -> total amount needed
    batches: dict[str, int]  # crafted item -> number of crafts
    base: list[str]  # items fetched with get
    actions: list[tuple[str, str]] = field(default_factory=list)  # (kind "get"/"craft", item)
    choice: dict = field(default_factory=dict)  # the decisions `_expand` followed (recipes, stand-ins)

    @property
    def rounds(self) -> int:
        return len(self.actions)


MAX_PLANS = 20000  # plan combinations tried before settling for the best found (none come close)


def _members(recipes: dict[str, list[ShownRecipe]], name: str, banned: frozenset[str]) -> list[str]:
    """Items that can stand in for a generic ingredient: `oak planks` for `planks`. A stand-in is named
    `... <name>` and is not made from `name` itself (`blue ice` from `packed ice` from `ice` is not ice)."""

    def made_from(item: str, seen: set[str]) -> bool:
        if item == name:
            return True
        if item in seen or item not in recipes:
            return False
        seen.add(item)
        return any(made_from(i, seen) for r in recipes[item] for _, i in r.inputs)

    return sorted(
        out for out in recipes if out.endswith(" " + name) and out not in banned and not made_from(out, set())
    )


def _expand(recipes, choice: dict, goal: str, have: dict[str, int], banned: frozenset[str]):
    """Follow `choice` from the goal. Returns ("decide", key, options) at the first open decision,
    ("cycle",) for a choice that loops, or ("plan", post-order, need, batches)."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    edges: dict[str, list[tuple[int, str]]] = {}

    def visit(item: str):
        if state.get(item) == 2:
            return None
        if state.get(item) == 1:
            return ("cycle",)
        state[item] = 1
        if item in recipes:
            key = ("recipe", item)
            if key not in choice:
                if len(recipes[item]) > 1:
                    return ("decide", key, list(range(len(recipes[item]))))
                choice[key] = 0
            r = recipes[item][choice[key]]
            kids = []
            for k, name in r.inputs:
                if name not in recipes:
                    gkey = ("generic", name)
                    if gkey not in choice:
                        options = _members(recipes, name, banned)
                        if options:
                            return ("decide", gkey, options)
                        choice[gkey] = name  # a base item
                    name = choice[gkey]
                kids.append((k, name))
            edges[item] = kids
            for _, kid in kids:
                out = visit(kid)
                if out is not None:
                    return out
        state[item] = 2
        order.append(item)
        return None

    out = visit(goal)
    if out is not None:
        return out
    need = dict.fromkeys(order, 0)
    need[goal] = 1
    batches: dict[str, int] = {}
    for item in reversed(order):  # every consumer before what it consumes
        missing = max(0, need[item] - have.get(item, 0))
        if item in recipes:
            r = recipes[item][choice[("recipe", item)]]
            batches[item] = n = math.ceil(missing / r.count)
            for k, kid in edges[item]:
                need[kid] += k * n
        else:
            need[item] = missing
    return ("plan", order, need, batches)


def _rounds(recipes, order, need, batches) -> int:
    return sum(batches.values()) + sum(1 for item in order if item not in recipes and need[item] > 0)


def make_plan(
    observation: str,
    rng: random.Random,
    have: dict[str, int] | None = None,
    banned: frozenset[str] = frozenset(),
    prefer_whole: bool = False,
) -> Plan:
    """The shortest plan (fewest rounds) the shown commands allow, among plans that use one recipe per
    item and one stand-in per generic ingredient; ties broken by `rng`. `have` is what is already held;
    `banned` lists stand-ins the env refused. `prefer_whole`: among plans equally short from `have`, first
    keep those whose choices make the shortest plan from nothing (the state expert: choices for parts
    already held, e.g. which planks the held sticks were made of, then follow what the demo would do)."""
    recipes, goal = parse_observation(observation)
    if goal not in recipes:
        raise ValueError(f"no crafting command makes the goal {goal!r}")
    have = have or {}
    best: list[tuple[dict, tuple]] = []
    best_rounds: tuple[int, int] | None = None
    tried = 0
    stack: list[dict] = [{}]
    while stack and tried < MAX_PLANS:
        choice = stack.pop()
        out = _expand(recipes, choice, goal, have, banned)
        if out[0] == "decide":
            _, key, options = out
            stack.extend({**choice, key: option} for option in reversed(options))
            continue
        tried += 1
        if out[0] == "cycle":
            continue
        rounds = (_rounds(recipes, *out[1:]), 0)
        if prefer_whole:  # the same choices expand from nothing (the tree does not depend on `have`)
            whole = _expand(recipes, dict(choice), goal, {}, banned)
            rounds = (rounds[0], _rounds(recipes, *whole[1:]))
        if best_rounds is None or rounds < best_rounds:
            best, best_rounds = [(choice, out)], rounds
        elif rounds == best_rounds:
            best.append((choice, out))
    if not best:
        raise ValueError("every way to make the goal from the shown commands loops")
    choice, (_, order, need, batches) = rng.choice(best)
    recipe_of = {item: recipes[item][choice[("recipe", item)]] for item in order if item in recipes}
    generic = {k[1]: v for k, v in choice.items() if k[0] == "generic" and v != k[1]}
    base = [item for item in order if item not in recipes and need[item] > 0]
    plan = Plan(goal, recipe_of, generic, need, batches, base, choice=choice)

    # A fresh post-order with shuffled branches: any order that crafts inputs first works.
    kids = {item: [generic.get(n, n) for _, n in r.inputs] for item, r in recipe_of.items()}
    crafts: list[str] = []
    done: set[str] = set()

    def visit(item: str) -> None:
        if item in done or item not in recipe_of:
            return
        done.add(item)
        children = list(kids[item])
        rng.shuffle(children)
        for c in children:
            visit(c)
        crafts.append(item)

    visit(goal)
    crafts = [c for c in crafts if batches[c] > 0]
    if rng.random() < 0.5:  # gather everything first
        gets = list(base)
        rng.shuffle(gets)
        plan.actions = [("get", b) for b in gets] + [("craft", c) for c in crafts for _ in range(batches[c])]
    else:  # fetch each base item just before the first craft that needs it
        fetched: set[str] = set()
        for c in crafts:
            for item in kids[c]:
                if item in base and item not in fetched:
                    fetched.add(item)
                    plan.actions.append(("get", item))
            plan.actions += [("craft", c)] * batches[c]
    return plan


# -- writing the turns --------------------------------------------------------------------------------------


def _amounts(items: list[tuple[int, str]]) -> str:
    return ", ".join(f"{k} {name}" for k, name in items)


def _craft_command(plan: Plan, item: str) -> str:
    r = plan.recipe_of[item]
    ins = [(k, plan.generic.get(name, name)) for k, name in r.inputs]
    return f"craft {r.count} {item} using {_amounts(ins)}"


def _action(plan: Plan, kind: str, item: str) -> str:
    return f"get {plan.need[item]} {item}" if kind == "get" else _craft_command(plan, item)


def _turn_text(thought_style: str, thought: str, action: str) -> str:
    return f"Action: {action}" if thought_style == "none" else f"Thought: {thought}\nAction: {action}"


def _overview(plan: Plan, rng: random.Random) -> str:
    r = plan.recipe_of[plan.goal]
    parts = [f"To craft {plan.goal} I need {_amounts(list(r.inputs))}."]
    for name, item in plan.generic.items():
        parts.append(f"Any kind of {name} works, so I will use {item}.")
    made = [i for i in plan.batches if i != plan.goal]
    if made:
        parts.append(f"I have to craft {', '.join(made)} first" + (" from basic items." if rng.random() < 0.5 else "."))
    if plan.base:
        parts.append("The basic items to get are " + _amounts([(plan.need[b], b) for b in plan.base]) + ".")
    return " ".join(parts)


def _users(plan: Plan, item: str) -> list[str]:
    return [o for o, r in plan.recipe_of.items() if any(plan.generic.get(n, n) == item for _, n in r.inputs)]


THOUGHT_STYLES = ("full", "brief", "none")


def _brief_thought(plan: Plan, kind: str, item: str, nth: int) -> str:
    if kind == "craft" and item == plan.goal:
        return f"Now I craft {item}."
    users = " and ".join(_users(plan, item))
    n = plan.batches.get(item, 1) if kind == "craft" else 1
    progress = f" ({nth} of {n})" if n > 1 else ""  # without it a small model loses count of repeats
    return f"I need {plan.need[item]} {item} for {users}{progress}."


def _thought(plan: Plan, kind: str, item: str, nth: int, rng: random.Random) -> str:
    if kind == "get":
        users = _users(plan, item)
        why = f" for {' and '.join(users)}" if users else ""
        return rng.choice(
            [
                f"I need {plan.need[item]} {item}{why}. I can get it directly.",
                f"{item.capitalize()} is a basic item; I get the {plan.need[item]} I need{why}.",
                f"Next I get {plan.need[item]} {item}{why}.",
            ]
        )
    n = plan.batches[item]
    r = plan.recipe_of[item]
    if item == plan.goal:
        return rng.choice(
            [f"I have everything for {item} now, so I craft it.", f"All ingredients are ready. Time to craft {item}."]
        )
    who = " and ".join(_users(plan, item))
    progress = f" ({nth} of {n})" if n > 1 else ""
    if nth > 1:
        return f"One more craft of {item}{progress}: I need {plan.need[item]} in total for {who}."
    yields = f"each craft gives {r.count}, so I craft it {n} times" if n > 1 else f"one craft gives {r.count}"
    return rng.choice(
        [
            f"I need {plan.need[item]} {item} for {who}; {yields}{progress}.",
            f"Now I can make {item} for {who}. I need {plan.need[item]} and {yields}{progress}.",
        ]
    )


def expert_trajectory(env, task_id: str, seed: int = 0, thought_style: str = "full") -> Trajectory:
    """Reset `env` to `task_id`, plan from the observation and play the plan; the episode as a Trajectory.

    `seed` varies only harmless choices: which of equally short recipes or generic items, the order of
    independent branches, gathering up front or just in time, and the wording of the thoughts.
    `thought_style` ("full" | "brief" | "none", see the module doc) changes the thoughts only, never the actions.
    """
    if thought_style not in THOUGHT_STYLES:
        raise UserError(f"unknown thought style {thought_style!r}; choose one of {', '.join(THOUGHT_STYLES)}")
    brief = thought_style == "brief"
    rng = random.Random(f"textcraft-expert/{task_id}/{seed}")
    first = env.reset(task_id)
    traj = Trajectory.begin(
        env,
        task_id,
        first,
        id=f"{task_id}-expert-{seed}-{uuid.uuid4().hex[:8]}",
        policy="expert",
        seed=seed,
    )
    try:
        plan = make_plan(first, rng)
    except ValueError as e:
        traj.status = "policy_error"
        traj.meta = {"failure": f"no plan: {e}"}
        return traj
    depth = getattr(getattr(env, "book", None), "depth", {}).get("minecraft:" + plan.goal.replace(" ", "_"))
    traj.meta = {"goal": plan.goal, "depth": depth, "group": f"depth {depth}", "planned_rounds": plan.rounds}

    observation = first
    have: dict[str, int] = {}  # what the env confirmed we hold (item text -> count)
    banned: set[str] = set()
    queue = list(plan.actions)
    crafted: dict[str, int] = {}
    spent = 0  # rounds used before the current plan
    preface = _overview(plan, rng) + " "  # drawn in both styles so the seed's other choices match
    if brief:  # the goal's recipe only: a small policy that never writes the goal down loses it
        preface = f"To craft {plan.goal} I need {_amounts(list(plan.recipe_of[plan.goal].inputs))}. "
    while queue and traj.num_steps < env.max_rounds:
        kind, item = queue.pop(0)
        if kind == "craft":
            crafted[item] = crafted.get(item, 0) + 1
        action = _action(plan, kind, item)
        thought = _thought(plan, kind, item, crafted.get(item, 0), rng)  # drawn in both styles, as above
        if brief:
            thought = _brief_thought(plan, kind, item, crafted.get(item, 0))
        output = _turn_text(thought_style, preface + thought, action)
        preface = ""
        parsed = env.parse_action(output)
        res = env.step(parsed)
        t = traj.num_steps
        traj.steps.append(
            Step(t=t, observation=observation, output=output, action=parsed, reward=res.reward, done=res.done)
        )
        traj.compute.env_steps += 1
        observation = res.observation
        if res.done:
            break
        if _accepted(observation):
            _update_holdings(have, plan, kind, item)
            continue
        # Refused. The one thing the commands cannot show is which items a generic ingredient accepts
        # (e.g. white wool is not "wool" here): drop the stand-ins this craft used and plan again.
        used = {
            plan.generic[n] for _, n in plan.recipe_of.get(item, ShownRecipe("", 0, ())).inputs if n in plan.generic
        }
        if kind != "craft" or not used:
            break
        banned |= used
        try:
            plan = make_plan(first, rng, have=have, banned=frozenset(banned))
        except ValueError:
            break
        queue, crafted, spent = list(plan.actions), {}, traj.num_steps
        swaps = ", ".join(
            f"{plan.generic.get(n, 'something else')} for {n}" for n in sorted(_generic_names(used, first))
        )
        preface = f"That did not work: {' and '.join(sorted(used))} does not count here. I will use {swaps} instead. "
        if brief:
            preface = f"I will use {swaps} instead. "
    traj.final_observation = observation
    last = traj.steps[-1] if traj.steps else None
    traj.reward = last.reward if last else 0.0
    traj.success = bool(last and env.is_success(last.reward, last.done))
    if last and last.done:
        traj.status = "done"
    elif traj.num_steps >= env.max_rounds:
        traj.status = "max_rounds"
    else:
        traj.status = "policy_error"  # the expert gave up after the env refused one of its actions
    if not traj.success:
        traj.meta["failure"] = _failure(spent + plan.rounds, traj.num_steps, env.max_rounds, observation)
    return traj


def _accepted(observation: str) -> bool:
    return observation.startswith(("Got ", "Crafted ", "Inventory: "))


def _update_holdings(have: dict[str, int], plan: Plan, kind: str, item: str) -> None:
    if kind == "get":
        have[item] = have.get(item, 0) + plan.need[item]
        return
    r = plan.recipe_of[item]
    for k, name in r.inputs:
        used = plan.generic.get(name, name)
        have[used] -= k
    have[item] = have.get(item, 0) + r.count


def _generic_names(stand_ins: set[str], observation: str) -> set[str]:
    recipes, _ = parse_observation(observation)
    names = {i for rs in recipes.values() for r in rs for _, i in r.inputs if i not in recipes}
    return {n for n in names if any(s.endswith(" " + n) for s in stand_ins)}


def _failure(rounds: int, used: int, max_rounds: int, last_observation: str) -> str:
    if used >= max_rounds:
        return f"the shortest plan from the shown commands needs {rounds} rounds, more than {max_rounds}"
    return f"the env refused an action: {last_observation}"


# -- acting from any state (DAgger's labeller, see envs/state_expert.py) -------------------------------------

MAX_REPLANS = 8  # stand-in bans tried from one state before giving up (a goal has a handful of generics)


@dataclass
class _DemoPath:
    """The expert's own successful episode on a task: its turns and the inventory before each."""

    first_observation: str
    outputs: list[str]
    actions: list[str]
    inventories: list[dict[str, int]]  # env item id -> count, before each turn

    def turn_at(self, inventory: dict[str, int]) -> int | None:
        # Every demo turn changes the inventory (no refusals, no looks), so a match is unique.
        return next((j for j, inv in enumerate(self.inventories) if inv == inventory), None)


class TextCraftStateExpert:
    """The expert's next turn from any state of a local `TextCraftEnv`, read from the env's inventory.

    On the expert's own path (the inventory is one its demo of this task passes through, with the same
    `seed`), the answer is the demo's turn there, word for word. Anywhere else it plans again from the
    holdings (`make_plan(..., have=...)`), plays the plan out on a clone of the env to check it reaches the
    goal (banning a stand-in the env refuses and planning again, as the demo expert does), and writes the
    first action with a thought in the demos' style: amounts and "(n of m)" counts are the whole plan's, as
    the demos write them (the second of two plank crafts is "(2 of 2)" however the first was made).
    No label where no plan reaches the goal; the remaining round budget is not checked (`rounds_to_goal`
    says what the continuation needs).
    """

    def __init__(self, thought_style: str = "full", seed: int = 0):
        if thought_style not in THOUGHT_STYLES:
            raise UserError(f"unknown thought style {thought_style!r}; choose one of {', '.join(THOUGHT_STYLES)}")
        self.thought_style = thought_style
        self.seed = seed
        self._demos: dict[str, _DemoPath | None] = {}

    def next_turn(self, env, steps: list[Step], first_observation: str) -> ExpertTurn:
        inventory = getattr(env, "inventory", None)
        if inventory is None or env.task_id is None:
            return ExpertTurn.unlabelled("the env exposes no inventory (a local TextCraftEnv after reset is needed)")
        demo = self._demo(env)
        if demo is not None and demo.first_observation != first_observation:
            demo = None  # the episode shows other commands than the task's reset (a changed env): plan from them
        j = demo.turn_at(inventory) if demo is not None else None
        if demo is not None and j is not None:
            return ExpertTurn(demo.outputs[j], demo.actions[j], source="demo", rounds_to_goal=len(demo.actions) - j)
        return self._replan(env, first_observation)

    def _demo(self, env) -> _DemoPath | None:
        task_id = env.task_id
        if task_id not in self._demos:
            traj = expert_trajectory(env.clone(), task_id, self.seed, self.thought_style)
            replay = env.clone()
            replay.reset(task_id)
            inventories = []
            clean = traj.success
            for s in traj.steps:
                inventories.append(dict(replay.inventory))
                clean = clean and (s.done or _accepted(replay.step(s.action).observation))
            # A demo with a refused stand-in passes one inventory twice; plan from the holdings instead.
            self._demos[task_id] = (
                _DemoPath(
                    traj.first_observation, [s.output for s in traj.steps], [s.action for s in traj.steps], inventories
                )
                if clean
                else None
            )
        return self._demos[task_id]

    def _replan(self, env, first_observation: str) -> ExpertTurn:
        from agentprm.envs.textcraft import item_text

        have = {item_text(k): v for k, v in env.inventory.items()}
        # Seeded by the state: the same holdings get the same label in every episode that reaches them.
        rng = random.Random(f"textcraft-expert/{env.task_id}/{self.seed}/{sorted(have.items())}")
        banned: set[str] = set()
        for _ in range(MAX_REPLANS):
            try:
                plan = make_plan(first_observation, rng, have=have, banned=frozenset(banned), prefer_whole=True)
            except ValueError as e:
                return ExpertTurn.unlabelled(f"no plan from these holdings: {e}")
            refused = _play_out(env.clone(), plan)
            if refused is None:
                break
            kind, item, said = refused
            used = {
                plan.generic[n] for _, n in plan.recipe_of.get(item, ShownRecipe("", 0, ())).inputs if n in plan.generic
            }
            if kind != "craft" or not used:
                return ExpertTurn.unlabelled(f"the env refused the plan's `{_action(plan, kind, item)}`: {said}")
            banned |= used
        else:
            return ExpertTurn.unlabelled(f"every plan from these holdings was refused after {MAX_REPLANS} tries")
        kind, item = plan.actions[0]
        recipes, _ = parse_observation(first_observation)
        whole = _expand(recipes, dict(plan.choice), plan.goal, {}, frozenset(banned))
        if whole[0] != "plan":  # cannot happen: the same choices planned from holdings
            return ExpertTurn.unlabelled(f"the plan's choices do not expand from empty holdings ({whole[0]})")
        _, _, need, batches = whole
        # Thoughts count over the whole plan, as the demos do; a get says the amount it gets.
        counted = Plan(
            plan.goal, plan.recipe_of, plan.generic, {**need, **{b: plan.need[b] for b in plan.base}}, batches, []
        )
        nth = batches[item] - plan.batches[item] + 1 if kind == "craft" else 1
        if self.thought_style == "brief":
            thought = _brief_thought(counted, kind, item, nth)
        else:
            thought = _thought(counted, kind, item, nth, rng)
        action = _action(plan, kind, item)
        return ExpertTurn(
            _turn_text(self.thought_style, thought, action), action, source="replan", rounds_to_goal=plan.rounds
        )


def _play_out(env, plan: Plan) -> tuple[str, str, str] | None:
    """Play `plan` on `env` (a clone): None when it reaches the goal, else (kind, item, the env's answer)
    of the first action the env refused (or of the last one, when the plan ends short of the goal)."""
    kind, item, said = "", "", "the plan is empty"
    for kind, item in plan.actions:
        res = env.step(_action(plan, kind, item))
        said = res.observation
        if res.done:
            return None if env.is_success(res.reward, res.done) else (kind, item, said)
        if not _accepted(said):
            return kind, item, said
    return kind, item, f"the plan ended without the goal ({said})"


def state_expert(thought_style: str | None = None, seed: int = 0) -> TextCraftStateExpert:
    """`EnvSpec.state_expert`'s factory: the demos' default thought style unless one is given."""
    return TextCraftStateExpert(thought_style or "full", seed)
