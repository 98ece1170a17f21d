"""Expert demos for BabyAI, in the env's own macro-action space.

Two solvers, tried in order:

1. **Macro BFS.** Breadth-first over the available macro actions on cloned envs, de-duplicated on the
   state (grid, pose, carried object, instruction progress), with an expansion budget. It finds the
   fewest-rounds solution when one lies within the budget: most GoTo/Pickup/Open/PutNext levels.
2. **minigrid's BabyAIBot**, run in a forked subprocess with a timeout and an address-space cap (it
   fails on a few levels and can hang while growing to gigabytes). Its primitive-action episode is then
   compressed into macros: from each state, take the macro that lands furthest along the bot's path
   (matched on the same state fingerprint). Exploration-heavy episodes may not fit in the 20 rounds:
   those fail and are reported as such.

Each turn is written "Thought: ...\\nAction: ..." with a short thought saying why the action helps.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import re
import resource
from collections import deque
from dataclasses import dataclass

from agentprm.envs.babyai import (
    BabyAIEnv,
    _quiet,
    level_and_seed,
    make_level,
    parse_task_id,
)
from agentprm.errors import UserError
from agentprm.trajectory import Compute, Step, Trajectory


@dataclass
class ExpertConfig:
    bfs_budget: int = 250  # macro expansions (clone + step) before giving up on BFS
    bot_timeout_s: float = 3.0  # wall clock for the bot's whole episode (it needs 0-0.3 s when it works)
    bot_memory_mb: int = 2048  # address space the bot may add to what the process already maps
    bot_max_primitives: int = 1000
    segment_budget: int = 120  # expansions per BFS from one bot segment to the next
    use_bot: bool = True


_WORDS = re.compile(r"[a-z]+")
_CARRY = re.compile(r"You are carrying a (\w+ \w+)\.")


THOUGHT_STYLES = ("full", "none")


def expert_trajectory(
    env: BabyAIEnv, task_id: str, seed: int = 0, config: ExpertConfig | None = None, thought_style: str = "full"
) -> Trajectory:
    """Solve `task_id` with the expert; the returned trajectory's `success` says whether it did.

    `thought_style="none"` writes every turn as `Action: ...` (the same actions): the tiny default's
    turns, ~5 generated tokens instead of ~32 (docs/policy.md)."""
    if thought_style not in THOUGHT_STYLES:
        raise UserError(f"unknown thought style {thought_style!r}; choose one of {', '.join(THOUGHT_STYLES)}")
    cfg = config or ExpertConfig()
    env.reset(task_id)
    level = env.level
    plan, expansions = _bfs_plan(env, cfg.bfs_budget, random.Random(f"{task_id}:{seed}"))
    solver = "bfs"
    note = ""
    if plan is None and cfg.use_bot:
        solver = "bot"
        plan, note = _bot_plan(env, task_id, cfg)
    traj = _replay(env, task_id, plan or [], seed, solver if plan else "none", thoughts=thought_style == "full")
    traj.meta.update({"group": level.removeprefix("BabyAI-").removesuffix("-v0"), "bfs_expansions": expansions})
    if note:
        traj.meta["note"] = note
    return traj


# -- solver 1: BFS over macros --------------------------------------------------------------------------


def _ordered_actions(env: BabyAIEnv, rng: random.Random) -> list[str]:
    """Available state-changing actions, those naming the mission's words first (ties shuffled)."""
    goal_words = set(_WORDS.findall(env.goal))
    acts = [a for a in env.available_actions if a != "check available actions"]
    rng.shuffle(acts)
    return sorted(acts, key=lambda a: -len(goal_words & set(a.split())))


def _bfs_plan(env: BabyAIEnv, budget: int, rng: random.Random) -> tuple[list[str] | None, int]:
    seen = {env.fingerprint()}
    queue: deque[tuple[BabyAIEnv, list[str]]] = deque([(env.clone(), [])])
    expansions = 0
    while queue:
        node, path = queue.popleft()
        for action in _ordered_actions(node, rng):
            if expansions >= budget:
                return None, expansions
            child = node.clone()
            res = child.step(action)
            expansions += 1
            if res.done:
                return [*path, action], expansions
            fp = child.fingerprint()
            if fp in seen or len(path) + 1 >= env.max_rounds:
                continue
            seen.add(fp)
            queue.append((child, [*path, action]))
    return None, expansions


# -- solver 2: the BabyAI bot, compressed into macros ----------------------------------------------------


def _bot_worker(level: str, seed: int, max_primitives: int, memory_mb: int, conn) -> None:
    try:
        vm_kb = _vm_size_kb()
        if vm_kb is not None:
            cap = (vm_kb * 1024) + memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        from minigrid.utils.baby_ai_bot import BabyAIBot

        env = make_level(level)
        with _quiet():
            env.reset(seed=seed)
            bot = BabyAIBot(env)
            actions: list[int] = []
            for _ in range(max_primitives):
                a = int(bot.replan())
                _, reward, terminated, _, _ = env.step(a)
                actions.append(a)
                if terminated:
                    conn.send((actions, reward > 0, ""))
                    return
        conn.send((actions, False, "bot ran out of primitive steps"))
    except MemoryError:
        conn.send(([], False, "bot hit the memory cap"))
    except BaseException as e:  # the bot's asserts ("nothing left to explore") end up here
        conn.send(([], False, f"bot failed: {type(e).__name__}: {e}"[:200]))
    finally:
        conn.close()


def _vm_size_kb() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_bot(level: str, seed: int, cfg: ExpertConfig) -> tuple[list[int], bool, str]:
    """The bot's primitive actions for (level, seed), in a subprocess with a timeout and a memory cap."""
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    parent, child = ctx.Pipe(duplex=False)
    # typeshed's BaseContext lacks Process; the fork and spawn contexts have it
    proc = ctx.Process(target=_bot_worker, args=(level, seed, cfg.bot_max_primitives, cfg.bot_memory_mb, child))  # type: ignore[attr-defined]
    proc.start()
    child.close()
    try:
        if parent.poll(cfg.bot_timeout_s):
            try:
                return parent.recv()
            except EOFError:
                return [], False, "bot process died"
        return [], False, f"bot timed out after {cfg.bot_timeout_s:.0f}s"
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        parent.close()


def _world(fp: tuple) -> tuple:
    """A state fingerprint without the agent's pose: objects, carried object, instruction progress."""
    return (fp[0], fp[2], fp[3])


def _bot_plan(env: BabyAIEnv, task_id: str, cfg: ExpertConfig) -> tuple[list[str] | None, str]:
    """Follow the bot's episode in macros. The bot's path is cut into segments at each change of the
    world (a pickup, drop or door toggle); from each state a small BFS looks for the fewest macros that
    reach a later segment (any pose) or finish. Failing that, the macro that lands exactly on the
    furthest later state of the bot's path keeps us on it, or a small BFS finds the way back onto it."""
    level, seed = level_and_seed(parse_task_id(task_id))
    primitives, ok, note = run_bot(level, seed, cfg)
    if not ok:
        return None, note or "bot did not finish the mission"
    env.reset(task_id)
    exact: dict[tuple, int] = {}
    segment_of: dict[tuple, int] = {}
    segment_start: list[int] = [0]
    fp = env.fingerprint()
    exact[fp], segment_of[_world(fp)] = 0, 0
    with _quiet():
        for i, a in enumerate(primitives, start=1):
            env._env.step(a)
            fp = env.fingerprint()
            exact[fp] = i
            if _world(fp) not in segment_of:
                segment_start.append(i)
                segment_of[_world(fp)] = len(segment_start) - 1
    env.reset(task_id)
    plan: list[str] = []
    at, segment = 0, 0
    while len(plan) < env.max_rounds:
        found = _bfs_to(
            env,
            lambda fp, seg=segment: segment_of.get(_world(fp), -1) > seg,
            cfg.segment_budget,
            env.max_rounds - len(plan),
        )
        if found is not None:
            path, fp = found
            if _follow(env, path, plan):
                return plan, ""
            segment = segment_of[_world(fp)]
            at = segment_start[segment]
            continue
        best: tuple[int, str] | None = None
        for action in env.available_actions:
            if action == "check available actions":
                continue
            child = env.clone()
            child.step(action)
            reach = exact.get(child.fingerprint(), -1)
            if reach > at and (best is None or reach > best[0]):
                best = (reach, action)
        if best is not None:
            at, action = best
            plan.append(action)
            env.step(action)
            continue
        # Off the bot's path (a macro took another route): find the way back onto a later state of it.
        found = _bfs_to(env, lambda fp, at=at: exact.get(fp, -1) > at, cfg.segment_budget, env.max_rounds - len(plan))
        if found is None:
            return None, f"bot path not expressible in macros after {len(plan)} rounds"
        path, fp = found
        if _follow(env, path, plan):
            return plan, ""
        at = exact[fp]
    return None, f"bot path needs more than {env.max_rounds} rounds"


def _bfs_to(env: BabyAIEnv, target, budget: int, max_depth: int) -> tuple[list[str], tuple] | None:
    """Fewest macros from `env` to a state that finishes the task or satisfies `target(fingerprint)`."""
    seen = {env.fingerprint()}
    queue: deque[tuple[BabyAIEnv, list[str]]] = deque([(env, [])])
    expansions = 0
    while queue:
        node, path = queue.popleft()
        for action in node.available_actions:
            if action == "check available actions" or expansions >= budget:
                continue
            child = node.clone()
            res = child.step(action)
            expansions += 1
            fp = child.fingerprint()
            if res.done or target(fp):
                return [*path, action], fp
            if fp in seen or len(path) + 1 >= max_depth:
                continue
            seen.add(fp)
            queue.append((child, [*path, action]))
        if expansions >= budget:
            return None
    return None


# -- writing the trajectory -----------------------------------------------------------------------------


def thought_for(action: str, goal: str, observation: str, first: bool) -> str:
    """A short reason for `action`, from the goal and what the agent currently sees."""
    goal_words = set(_WORDS.findall(goal))
    named = ""
    for verb in ("toggle and go through ", "go through ", "go to ", "pickup "):
        if action.startswith(verb) and action.split()[-1].isdigit():
            named = action[len(verb) :].rsplit(" ", 1)[0]  # "red closed door" from "... red closed door 2"
            break
    relevant = bool(goal_words & set(named.split()) - {"door", "open", "closed", "locked"}) or (
        "door" in named and "door" in goal_words
    )
    if action.startswith("go to goal"):
        why = "The goal square is in view, so I walk onto it."
    elif action.startswith("go to "):
        why = (
            f"The {named} is what my goal is about, so I go to it."
            if relevant
            else f"I go to the {named} to get where I need to be."
        )
    elif action.startswith("pickup "):
        why = (
            f"I need the {named} for my goal, so I pick it up."
            if relevant
            else f"The {named} is in my way or useful, so I pick it up."
        )
    elif action.startswith("toggle and go through"):
        why = f"The {named} leads on; I open it and go through."
    elif action.startswith("go through"):
        why = f"I go through the {named} to reach the next room."
    elif action == "toggle":
        why = "There is a closed door right in front of me, so I open it."
    elif action == "drop":
        m = _CARRY.search(observation)
        why = f"I put down the {m.group(1) if m else 'object'} I am carrying here."
    elif action.startswith("turn"):
        why = f"What I need is not ahead; I {action} to look around."
    elif action == "move forward":
        why = "I move forward to get a better view."
    else:
        why = "I check what I can do."
    return (f"My goal is to {goal}. " if first else "") + why


def _follow(env: BabyAIEnv, path: list[str], plan: list[str]) -> bool:
    """Step `env` along `path`, append it to `plan`; True when the episode ended."""
    for action in path:
        env.step(action)
    plan.extend(path)
    return env.done


def _replay(env: BabyAIEnv, task_id: str, plan: list[str], seed: int, solver: str, thoughts: bool = True) -> Trajectory:
    first = env.reset(task_id)
    traj = Trajectory.begin(
        env,
        task_id,
        first,
        id=f"expert-{task_id}-s{seed}",
        policy=f"expert-{solver}",
        seed=seed,
    )
    observation = first
    for t, action in enumerate(plan[: env.max_rounds]):
        thought = f"Thought: {thought_for(action, env.goal, observation, t == 0)}\n" if thoughts else ""
        output = f"{thought}Action: {action}"
        res = env.step(action)
        traj.steps.append(
            Step(t=t, observation=observation, output=output, action=action, reward=res.reward, done=res.done)
        )
        observation = res.observation
        if res.done:
            break
    last = traj.steps[-1] if traj.steps else None
    traj.reward = last.reward if last else 0.0
    traj.success = bool(last and env.is_success(last.reward, last.done))
    traj.status = "done" if traj.success else "max_rounds"
    traj.final_observation = observation
    traj.compute = Compute(env_steps=len(traj.steps))
    traj.meta["low_level_steps"] = env.low_level_steps
    traj.meta["solver"] = solver
    return traj


__all__ = ["THOUGHT_STYLES", "ExpertConfig", "expert_trajectory", "run_bot", "thought_for"]
