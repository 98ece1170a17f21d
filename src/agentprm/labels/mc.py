"""Monte-Carlo step labels (paper §3.3.1, Eq 11; the Math-Shepherd-style baseline of §5.4).

For every step t of a seed trajectory, N_mc = 16 rollouts of the policy start from the next state
s_{t+1} (the env replayed through a_t, then `clone()`d once per rollout). Hard label (paper): 1 if at
least one rollout succeeds, else 0. Soft label (option): the mean outcome of the rollouts.

The last step needs no rollout: the episode is over, so its label is the trajectory's own outcome. A step
after which no rounds are left is labelled the same way (nothing can still succeed).

Rollouts go through a small callable, `RolloutFn(starts, n) -> outcomes`, so the labeler does not care
who generates: `policy_rollout_fn` runs them on the project's rollout engine over any `Policy` (one
batched call per round; rollout j from step t of trajectory `id` is seeded `episode_seed(seed,
f"{id}@{t+1}", j)`, so labels do not depend on which trajectories share a chunk). Cost = sampled
(generated) tokens of every rollout, the paper's Table 3 unit; the seed trajectory's own sampled tokens
are reported separately.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from agentprm.conversation import Message, trajectory_messages
from agentprm.envs.base import Env
from agentprm.errors import EnvError
from agentprm.labels.outcome import outcome_trusted, outcome_value
from agentprm.rollout.engine import RolloutConfig, continue_episode, run_episodes
from agentprm.rollout.jobs import episode_id, episode_seed
from agentprm.trajectory import Trajectory


@dataclass
class RolloutStart:
    env: Env  # at s_{t+1}; the rollout function clones it, it must leave this one untouched
    prefix: Trajectory  # the seed trajectory through a_t (steps 0..t)
    observation: str  # o_{t+1}: what the env answered to a_t

    @property
    def messages(self) -> list[Message]:
        """The conversation through o_{t+1} (ends in a user turn)."""
        return trajectory_messages(self.prefix) + [{"role": "user", "content": self.observation}]


@dataclass
class RolloutOutcome:
    reward: float
    success: bool
    generated_tokens: int
    status: str = "done"  # "done" | "max_rounds" | "env_error" | "policy_error"


RolloutFn = Callable[[list[RolloutStart], int], list[list[RolloutOutcome]]]


@dataclass
class MCResult:
    trajectory_id: str
    labels: list[float]
    rollout_tokens: int  # sampled tokens of all MC rollouts (the labelling cost)
    seed_tokens: int  # sampled tokens of the seed trajectory itself
    rollouts: int
    rollout_errors: int  # rollouts that ended in env_error/policy_error (left out of the label)


class ReplayMismatch(EnvError):
    """Replaying a trajectory's actions did not reproduce its observations (the env is not deterministic)."""


def _replay_states(traj: Trajectory, env: Env) -> list[Env]:
    """Env clones at s_1..s_{T+1} (after each action), checking the replay reproduces the observations."""
    obs = env.reset(traj.task_id)
    if obs != traj.first_observation:
        raise ReplayMismatch(f"{traj.id}: reset({traj.task_id}) gave another first observation than recorded")
    states = []
    for i, s in enumerate(traj.steps):
        res = env.step(s.action)
        expected = traj.steps[i + 1].observation if i + 1 < traj.num_steps else traj.final_observation
        if expected and res.observation != expected:
            raise ReplayMismatch(f"{traj.id}: step {i} replay gave another observation than recorded")
        states.append(env.clone())
    return states


def mc_label_trajectories(
    trajectories: Iterable[Trajectory],
    make_env: Callable[[], Env],
    rollout_fn: RolloutFn,
    *,
    n_mc: int = 16,
    soft: bool = False,
    binary_outcome: bool = False,
    chunk: int = 8,
) -> Iterator[MCResult]:
    """MC labels of each trajectory; rollouts of `chunk` trajectories go to `rollout_fn` in one call.

    `soft=False` is the paper's hard any-success label; `soft=True` the mean outcome (raw reward unless
    `binary_outcome`). Trajectories that ended in env_error/policy_error have no trustworthy outcome:
    the caller should filter them out first (the CLI does).
    """
    env = make_env()
    buf: list[Trajectory] = []
    for traj in trajectories:
        buf.append(traj)
        if len(buf) == chunk:
            yield from _label_chunk(buf, env, rollout_fn, n_mc, soft, binary_outcome)
            buf = []
    if buf:
        yield from _label_chunk(buf, env, rollout_fn, n_mc, soft, binary_outcome)


def _label_chunk(trajs, env, rollout_fn, n_mc, soft, binary) -> Iterator[MCResult]:
    starts: list[RolloutStart] = []
    owner: list[tuple[int, int]] = []  # (trajectory index, step) of each start
    for i, traj in enumerate(trajs):
        states = _replay_states(traj, env)
        for t, state in enumerate(states[:-1]):  # the last step is labelled by the outcome itself
            rounds_left = env.max_rounds - (t + 1)
            if traj.steps[t].done or rounds_left <= 0:
                continue
            starts.append(RolloutStart(state, replace(traj, steps=traj.steps[: t + 1]), traj.steps[t + 1].observation))
            owner.append((i, t))
    outcomes = rollout_fn(starts, n_mc) if starts else []
    per_step: dict[tuple[int, int], list[RolloutOutcome]] = dict(zip(owner, outcomes, strict=True))
    for i, traj in enumerate(trajs):
        final = outcome_value(traj, binary) if soft else float(traj.success)
        labels, tokens, count, errors = [], 0, 0, 0
        for t in range(traj.num_steps):
            outs = per_step.get((i, t))
            if outs is None:
                labels.append(final)
                continue
            tokens += sum(o.generated_tokens for o in outs)
            count += len(outs)
            ok = [o for o in outs if outcome_trusted(o.status)]
            errors += len(outs) - len(ok)
            if not ok:
                raise EnvError(f"{traj.id}: every MC rollout from step {t + 1} failed with an error")
            if soft:
                labels.append(sum(float(o.success) if binary else o.reward for o in ok) / len(ok))
            else:
                labels.append(1.0 if any(o.success for o in ok) else 0.0)
        seed = sum(s.generated_tokens for s in traj.steps)
        yield MCResult(traj.id, labels, tokens, seed, count, errors)


def policy_rollout_fn(
    policy,
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 128,
    seed: int | None = None,
    batch_size: int | None = None,
) -> RolloutFn:
    """A `RolloutFn` over any `Policy`, run on the rollout engine: the n·len(starts) rollouts advance
    together (at most `batch_size` at a time; None: all), one batched `generate` call per round. Env
    failures end that rollout as `env_error`, policy failures as `policy_error` (never reward 0)."""

    def run(starts: list[RolloutStart], n: int) -> list[list[RolloutOutcome]]:
        slot = {}  # id(episode) -> (start index, rollout index)
        episodes = []
        for si, st in enumerate(starts):
            key = f"{st.prefix.id}@{len(st.prefix.steps)}"
            for j in range(n):
                ep = continue_episode(
                    st.env.clone(),
                    st.prefix,
                    st.observation,
                    traj_id=episode_id(key, j),
                    seed=None if seed is None else episode_seed(seed, key, j),
                )
                slot[id(ep)] = (si, j)
                episodes.append(ep)
        cfg = RolloutConfig(temperature, max_new_tokens, batch_size=batch_size or max(1, len(episodes)))
        results: list[list[RolloutOutcome | None]] = [[None] * n for _ in starts]
        for ep in run_episodes(policy, episodes, cfg):
            si, j = slot[id(ep)]
            t = ep.traj
            results[si][j] = RolloutOutcome(t.reward, t.success, t.compute.policy_generated_tokens, t.status)
        return results  # type: ignore[return-value]

    return run
