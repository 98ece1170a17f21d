"""The batched rollout engine: many env instances stepped in lockstep, one policy call per round.

Each round makes ONE batched `policy.generate` call for every live episode (up to `batch_size`),
parses each output with its env, steps the env, and drops the episodes that ended (done, max rounds,
env error); freed slots are refilled from the episode stream, so the batch stays full.

API (small on purpose):
- `Episode(traj, env, observation)`: one episode to run. `observation=None` means "reset `env` with
  `traj.task_id` first" (`new_episode`); otherwise the env is already at the state after
  `traj.steps` and `observation` is what it said last (`continue_episode`: MC rollouts from a
  cloned env mid-episode, beam continuations).
- `run_episodes(policy, episodes, cfg)`: yields each finished `Episode` (its `traj` complete) as soon
  as it ends. `episodes` may be a lazy iterator: it is pulled only when a slot frees up.

Errors are data: an exception from `env.reset`/`env.step` (`agentprm.errors.EnvError` or any other)
ends that episode with status `env_error` and the message on the step (reset failures: on
`traj.meta["env_error"]`); a policy failure for a row ends it with `policy_error`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agentprm.conversation import Message, trajectory_messages
from agentprm.envs.base import Env
from agentprm.policy.base import Generation, Policy
from agentprm.trajectory import Compute, Step, Trajectory


@dataclass
class RolloutConfig:
    temperature: float = 1.0
    max_new_tokens: int = 128  # cap on one assistant turn
    max_rounds: int | None = None  # total turns of an episode, prefix included (None: the env's own)
    batch_size: int = 64  # live episodes, i.e. rows of one generation call


@dataclass
class Episode:
    traj: Trajectory
    env: Env
    observation: str | None = None  # the next observation to show; None: reset the env first

    def messages(self) -> list[Message]:
        """The conversation the policy sees for the next turn (ends in a user turn)."""
        msgs = trajectory_messages(self.traj)
        if self.traj.steps:
            msgs.append({"role": "user", "content": self.observation or ""})
        return msgs


def new_episode(
    env: Env,
    task_id: str,
    *,
    traj_id: str,
    policy: str = "",
    temperature: float | None = None,
    seed: int | None = None,
    meta: dict | None = None,
) -> Episode:
    """An episode that starts with `env.reset(task_id)` (done by the engine, so reset errors are recorded)."""
    traj = Trajectory.begin(
        env,
        task_id,
        "",
        id=traj_id,
        policy=policy,
        temperature=temperature,
        seed=seed,
        meta=dict(meta or {}),
    )
    return Episode(traj, env, None)


def continue_episode(
    env: Env, prefix: Trajectory, next_observation: str, *, traj_id: str, seed: int | None = None
) -> Episode:
    """An episode that continues `prefix` (its steps are copied) from `env`, already at that state.

    `env` must be independent of other episodes (pass `env.clone()`). The new trajectory's compute
    starts at zero (it counts only what this continuation spends); `meta["prefix_steps"]` records how
    many steps came from the prefix.
    """
    traj = copy.deepcopy(prefix)
    traj.id = traj_id
    traj.seed = seed
    traj.status = "running"
    traj.compute = Compute()
    traj.labels = {}
    traj.meta = {**traj.meta, "prefix_steps": len(prefix.steps)}
    return Episode(traj, env, next_observation)


def _turn_seed(seed: int | None, t: int) -> int | None:
    from agentprm.policy.hf import row_seed

    return None if seed is None else row_seed(seed, t)


def _generate(policy: Policy, convs: list[list[Message]], seeds: list[int | None], cfg: RolloutConfig):
    """One batched call; if it fails, retry row by row so one bad row (e.g. a context overflow) cannot
    sink the batch. Returns a Generation or the exception for each row."""
    kw = {"n": 1, "temperature": cfg.temperature, "max_new_tokens": cfg.max_new_tokens}
    all_seeded = all(s is not None for s in seeds)
    try:
        gens = policy.generate(convs, seed=seeds if all_seeded else None, **kw)
        return [g[0] for g in gens]
    except Exception:  # noqa: BLE001 - isolated below
        pass
    out: list[Generation | Exception] = []
    for conv, s in zip(convs, seeds):
        try:
            out.append(policy.generate([conv], seed=[s] if s is not None else None, **kw)[0][0])
        except Exception as e:  # noqa: BLE001 - recorded as policy_error
            out.append(e)
    return out


def _finish(ep: Episode, status: str, reward: float, observation: str) -> Episode:
    t = ep.traj
    t.status = status
    t.reward = reward
    t.final_observation = observation
    t.success = status == "done" and ep.env.is_success(reward, True)
    return ep


def run_episodes(policy: Policy, episodes: Iterable[Episode], cfg: RolloutConfig | None = None) -> Iterator[Episode]:
    """Run the episodes with batched generation; yield each one as soon as it has ended."""
    cfg = cfg or RolloutConfig()
    stream = iter(episodes)
    exhausted = False
    live: list[Episode] = []
    while True:
        while not exhausted and len(live) < cfg.batch_size:
            ep = next(stream, None)
            if ep is None:
                exhausted = True
                break
            if ep.observation is None:
                try:
                    ep.observation = ep.env.reset(ep.traj.task_id)
                    ep.traj.first_observation = ep.observation
                except Exception as e:  # noqa: BLE001 - errors are data
                    ep.traj.meta["env_error"] = f"{type(e).__name__}: {e}"
                    yield _finish(ep, "env_error", 0.0, "")
                    continue
            live.append(ep)
        if not live:
            return
        convs = [ep.messages() for ep in live]
        seeds = [_turn_seed(ep.traj.seed, len(ep.traj.steps)) for ep in live]
        gens = _generate(policy, convs, seeds, cfg)
        still: list[Episode] = []
        ended: list[Episode] = []
        for ep, g in zip(live, gens):
            traj = ep.traj
            if isinstance(g, Exception):
                traj.meta["policy_error"] = f"{type(g).__name__}: {g}"
                ended.append(_finish(ep, "policy_error", 0.0, ep.observation or ""))
                continue
            action = ep.env.parse_action(g.text)
            step = Step(
                t=len(traj.steps),
                observation=ep.observation or "",
                output=g.text,
                action=action,
                prompt_tokens=g.prompt_tokens,
                generated_tokens=g.generated_tokens,
            )
            if not g.finished:
                step.info["truncated"] = True  # the new-token cap cut this turn
            traj.steps.append(step)
            traj.compute.policy_prompt_tokens += g.prompt_tokens
            traj.compute.policy_generated_tokens += g.generated_tokens
            try:
                res = ep.env.step(action)
            except Exception as e:  # noqa: BLE001 - errors are data
                step.env_error = f"{type(e).__name__}: {e}"
                ended.append(_finish(ep, "env_error", 0.0, ""))
                continue
            traj.compute.env_steps += 1
            step.reward, step.done, step.info = float(res.reward), bool(res.done), {**step.info, **res.info}
            max_rounds = cfg.max_rounds or ep.env.max_rounds
            if res.done:
                ended.append(_finish(ep, "done", step.reward, res.observation))
            elif len(traj.steps) >= max_rounds:
                ended.append(_finish(ep, "max_rounds", step.reward, res.observation))
            else:
                ep.observation = res.observation
                still.append(ep)
        live = still
        yield from ended
