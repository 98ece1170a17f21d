"""The batched rollout engine: many env instances stepped in lockstep, one policy call per round.

Each round makes ONE batched `policy.generate` call for every live episode (up to `batch_size`),
parses each output with its env, steps the env, and drops the episodes that ended (done, max rounds,
env error); freed slots are refilled from the episode stream, so the batch stays full. This is the one
lock-step loop of the project: collect/evaluate, greedy and best-of-n search, beam search and the
Monte-Carlo label rollouts all run on it.

API (small on purpose):
- `Episode(traj, env, observation)`: one episode to run. `observation=None` means "reset `env` with
  `traj.task_id` first" (`new_episode`); otherwise the env is already at the state after
  `traj.steps` and `observation` is what it said last (`continue_episode`: MC rollouts from a
  cloned env mid-episode, beam continuations). `fork` copies a started episode k ways (env clones).
- `run_episodes(policy, episodes, cfg)`: yields each finished `Episode` (its `traj` complete) as soon
  as it ends. `episodes` may be a lazy iterator: it is pulled only when a slot frees up.
- `step_round(policy, episodes, cfg)`: advances every live episode by exactly one turn (one batched
  call); `run_episodes` is a loop over it.
- `generate_turn` + `advance`: the two halves of a round, for callers that choose between sampled
  actions before the env sees them (beam search samples M per node, scores them, steps the kept ones).

Seeds: turn t of an episode with seed s is sampled with `row_seed(s, t)`, one seed per conversation, so
what an episode samples depends on its own seed and conversation only, never on the batch it ran in
(batched == one by one, and a resumed job samples what the uninterrupted one would have).

Errors are data: an exception from `env.reset`/`env.step` (`agentprm.errors.EnvError` or any other)
ends that episode with status `env_error` and the message on the step (reset failures: on
`traj.meta["env_error"]`); a policy failure for a row ends it with `policy_error`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

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

    @property
    def finished(self) -> bool:
        return self.traj.status != "running"

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


E = TypeVar("E", bound=Episode)  # an Episode or a subclass (a search Node): fork and start keep it


def fork(ep: E, seeds: Sequence[int | None]) -> list[E]:
    """One independent copy of `ep` per seed, same history and compute so far (a copy that goes on
    from here). A live episode's env is cloned for all copies but the last, which takes `ep`'s own;
    an ended one's copies share its env (they never step again)."""
    if ep.observation is None and not ep.finished:
        raise ValueError("fork a started episode: call start(ep) first")
    envs = [ep.env] * len(seeds) if ep.finished else [ep.env.clone() for _ in seeds[:-1]] + [ep.env]
    out: list[E] = []
    for env, seed in zip(envs, seeds):
        # A deep copy with `env` standing in for the original's env: the trajectory and any other
        # field (a search node's scores) are copied, the subclass kept, and the env not deep-copied.
        child = copy.deepcopy(ep, memo={id(ep.env): env})
        child.traj.seed = seed
        out.append(child)
    return out


def sub_seed(seed: int | None, k: int) -> int | None:
    """The k-th seed derived from `seed` (None stays None: unseeded). Turn t of an episode seeded s
    samples with `sub_seed(s, t)`; beam search seeds a node's child from its k-th sample `sub_seed(s, k)`."""
    from agentprm.policy.base import row_seed

    return None if seed is None else row_seed(seed, k)


def start(ep: E) -> E:
    """Reset the env of an episode that has not started; a failure ends it with `env_error`."""
    if ep.observation is None and not ep.finished:
        try:
            ep.observation = ep.env.reset(ep.traj.task_id)
            ep.traj.first_observation = ep.observation
        except Exception as e:  # noqa: BLE001 - errors are data
            ep.traj.meta["env_error"] = f"{type(e).__name__}: {e}"
            _finish(ep, "env_error", 0.0, "")
    return ep


def generate_turn(
    policy: Policy, episodes: Sequence[Episode], cfg: RolloutConfig, n: int = 1
) -> list[list[Generation] | Exception]:
    """`n` samples of the next turn of every (started, live) episode in ONE batched call, each row
    seeded with its episode's turn seed. If the call fails it is retried row by row, so one bad row (e.g.
    a context overflow) cannot sink the batch; a row that still fails gets its exception."""
    convs = [ep.messages() for ep in episodes]
    seeds = [sub_seed(ep.traj.seed, len(ep.traj.steps)) for ep in episodes]

    def gen(cs: list, seed: list[int] | None) -> list[list[Generation]]:
        return policy.generate(cs, n=n, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=seed)

    all_seeded = [s for s in seeds if s is not None]
    try:
        return list(gen(convs, all_seeded if len(all_seeded) == len(seeds) else None))
    except Exception:  # noqa: BLE001 - isolated below
        pass
    out: list[list[Generation] | Exception] = []
    for conv, s in zip(convs, seeds):
        try:
            out.append(gen([conv], [s] if s is not None else None)[0])
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


def fail_policy(ep: Episode, error: Exception) -> Episode:
    """End `ep` with `policy_error`: the policy could not produce its next turn."""
    ep.traj.meta["policy_error"] = f"{type(error).__name__}: {error}"
    return _finish(ep, "policy_error", 0.0, ep.observation or "")


def advance(ep: Episode, gen: Generation, cfg: RolloutConfig) -> Episode:
    """Record `gen` as the episode's next turn, send its action to the env and end the episode if it is
    over (done, max rounds, env error). Mutates and returns `ep`."""
    traj = ep.traj
    action = ep.env.parse_action(gen.text)
    step = Step(
        t=len(traj.steps),
        observation=ep.observation or "",
        output=gen.text,
        action=action,
        prompt_tokens=gen.prompt_tokens,
        generated_tokens=gen.generated_tokens,
    )
    if not gen.finished:
        step.info["truncated"] = True  # the new-token cap cut this turn
    traj.steps.append(step)
    traj.compute.policy_prompt_tokens += gen.prompt_tokens
    traj.compute.policy_generated_tokens += gen.generated_tokens
    try:
        res = ep.env.step(action)
    except Exception as e:  # noqa: BLE001 - errors are data
        step.env_error = f"{type(e).__name__}: {e}"
        return _finish(ep, "env_error", 0.0, "")
    traj.compute.env_steps += 1
    step.reward, step.done, step.info = float(res.reward), bool(res.done), {**step.info, **res.info}
    ep.observation = res.observation
    if res.done:
        return _finish(ep, "done", step.reward, res.observation)
    if len(traj.steps) >= (cfg.max_rounds or ep.env.max_rounds):
        return _finish(ep, "max_rounds", step.reward, res.observation)
    return ep


def step_round(policy: Policy, episodes: Sequence[Episode], cfg: RolloutConfig | None = None) -> list[Episode]:
    """Advance every live episode by exactly one turn (resetting those not started yet), with one
    batched `generate` call; ended episodes are left as they are. Returns `episodes`."""
    cfg = cfg or RolloutConfig()
    live = [ep for ep in map(start, episodes) if not ep.finished]
    if live:
        for ep, g in zip(live, generate_turn(policy, live, cfg), strict=True):
            if isinstance(g, Exception):
                fail_policy(ep, g)
            else:
                advance(ep, g[0], cfg)
    return list(episodes)


def run_episodes(policy: Policy, episodes: Iterable[Episode], cfg: RolloutConfig | None = None) -> Iterator[Episode]:
    """Run the episodes with batched generation; yield each one as soon as it has ended (an episode
    that has ended already, e.g. a fork of a failed reset, is yielded as it is)."""
    cfg = cfg or RolloutConfig()
    stream = iter(episodes)
    exhausted = False
    live: list[Episode] = []
    while True:
        while not exhausted and len(live) < cfg.batch_size:
            ep = next(stream, None)
            if ep is None:
                exhausted = True
            elif start(ep).finished:
                yield ep
            else:
                live.append(ep)
        if not live:
            return
        step_round(policy, live, cfg)
        yield from (ep for ep in live if ep.finished)
        live = [ep for ep in live if not ep.finished]
