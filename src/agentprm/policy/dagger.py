"""DAgger: expert corrections on the policy's own states (Ross et al. 2011), as SFT data.

A policy trained on expert demos only ever saw the expert's states; after one wrong step it is somewhere
the demos never went and does not recover. DAgger asks the expert what it would do *there*:

1. roll out the policy on training tasks (the batched engine, `rollout/`; never test tasks);
2. replay each episode in a fresh env and, at every state the policy acted in, ask the env's state expert
   (`envs/state_expert.py`) for its turn;
3. write one correction record per labelled state: the policy's own turns up to that state, flagged
   `loss: False` (context, not trained), then the expert's turn (trained). `agentprm sft --demos DEMOS
   --demos CORRECTIONS` trains on the demos and the corrections together (DAgger's aggregation).

A state the expert cannot act from is counted with its reason and gets no record (never an invented
label). The policy's episodes go to a rollouts JSONL, one line each, written after that episode's
corrections: a rerun skips the episodes in it and first drops the corrections of an episode whose rollout
line is missing (a kill between the two writes), so nothing is duplicated or half-written.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentprm.conversation import CORRECTION, LOSS
from agentprm.envs.state_expert import ExpertTurn, StateExpert
from agentprm.errors import UserError
from agentprm.trajectory import JsonlWriter, Step, Trajectory, iter_jsonl


@dataclass
class DaggerConfig:
    n_tasks: int  # the first N ids of the train split (envs with modulo ids repeat goals beyond the pool)
    temperature: float = 0.0  # 0: the greedy policy's own states, the ones its evaluation visits
    max_new_tokens: int = 128
    max_rounds: int | None = None  # None: the env's own budget
    batch_size: int = 64
    seed: int = 0  # sampling seed (T > 0)
    thought_style: str | None = None  # the expert's thoughts; must match the demos the policy learned from
    expert_seed: int = 0  # the demos' `--seed`: on the expert's own path the label is that demo's turn
    # records only where the policy's action was a mistake: it left every shortest way to the goal (an
    # equally short alternative, e.g. another order of gets, is not corrected to the expert's arbitrary pick)
    only_mistakes: bool = False


@dataclass
class DaggerSummary:
    episodes: int = 0  # rolled out and labelled in this run
    resumed: int = 0  # already in the rollouts file
    successes: int = 0  # of `episodes`: the policy solved the task
    states: int = 0  # states the policy acted in (one per turn)
    labelled: int = 0
    agreeing: int = 0  # labelled states where the policy's action equals the expert's
    optimal: int = 0  # labelled states where the policy's action kept a shortest way (agreeing ones included)
    written: int = 0  # correction records written (all labelled, or only the mistakes)
    over_budget: int = 0  # labelled states whose expert continuation needs more turns than are left
    sources: Counter[str] = field(default_factory=Counter)  # how the expert chose (TextCraft: demo / replan)
    unrecoverable: Counter[str] = field(default_factory=Counter)  # why a state got no label

    def add(self, other: DaggerSummary) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def line(self, out: Path) -> str:
        per = f"{self.written / self.episodes:.1f}" if self.episodes else "n/a"
        why = "; ".join(f"{n} {r}" for r, n in self.unrecoverable.most_common(3))
        return (
            f"{self.episodes} episodes ({self.resumed} resumed; policy success {self.successes}/{self.episodes}), "
            f"{self.states} states visited, {self.labelled} labelled ({self.agreeing} agreeing with the policy, "
            f"{self.labelled - self.optimal} policy mistakes; "
            f"{', '.join(f'{n} {s}' for s, n in sorted(self.sources.items())) or 'none'}), "
            f"{sum(self.unrecoverable.values())} unrecoverable{f' ({why})' if why else ''}, "
            f"{self.over_budget} past the round budget; wrote {self.written} corrections to {out} ({per} per episode)"
        )


def rollouts_path(out: str | Path) -> Path:
    """Where the policy's episodes go beside the corrections file `out` (its resume record)."""
    out = Path(out)
    return out.with_name(out.stem + ".rollouts.jsonl")


def correction_records(
    traj: Trajectory,
    env: Any,
    expert: StateExpert,
    *,
    max_rounds: int | None = None,
    only_mistakes: bool = False,
) -> tuple[list[Trajectory], DaggerSummary]:
    """The correction records of one policy episode, replayed in `env` (reset here), and their counts.

    Replay needs a deterministic env: each observation must equal the one the episode recorded, or the
    rest of the episode is counted unrecoverable ("replay diverged") rather than labelled from a state the
    policy never saw.
    """
    s = DaggerSummary()
    budget = max_rounds or env.max_rounds
    n = len(traj.steps)
    s.states = n
    try:
        observation = env.reset(traj.task_id)
    except Exception as e:  # noqa: BLE001 - errors are data
        s.unrecoverable[f"replay: reset failed ({type(e).__name__})"] += n
        return [], s
    records: list[Trajectory] = []
    for k, step in enumerate(traj.steps):
        if observation != step.observation:
            s.unrecoverable["replay diverged from the rollout"] += n - k
            break
        turn: ExpertTurn = expert.next_turn(env, traj.steps[:k], traj.first_observation)
        if not turn.labelled:
            s.unrecoverable[turn.reason] += 1
        else:
            s.labelled += 1
            s.sources[turn.source] += 1
            agrees = turn.action == step.action
            optimal = agrees or _keeps_a_shortest_way(env, expert, traj, k, turn.rounds_to_goal)
            s.agreeing += agrees
            s.optimal += optimal
            s.over_budget += turn.rounds_to_goal is not None and k + turn.rounds_to_goal > budget
            if not (optimal and only_mistakes):
                records.append(_record(traj, k, turn, env, agrees, optimal))
        try:
            observation = env.step(step.action).observation
        except Exception as e:  # noqa: BLE001 - errors are data
            s.unrecoverable[f"replay: step failed ({type(e).__name__})"] += n - k - 1
            break
    s.written = len(records)
    return records, s


def _keeps_a_shortest_way(env: Any, expert: StateExpert, traj: Trajectory, k: int, rounds: int | None) -> bool:
    """Whether the policy's action at state k leaves the expert's shortest way no longer: the expert needs
    at most `rounds` - 1 turns after it (or it ended the episode with success)."""
    if rounds is None:
        return False
    twin = env.clone()
    try:
        res = twin.step(traj.steps[k].action)
    except Exception:  # noqa: BLE001 - the replay records the failure itself
        return False
    if res.done:
        return bool(twin.is_success(res.reward, res.done))
    after = expert.next_turn(twin, traj.steps[: k + 1], traj.first_observation)
    return after.rounds_to_goal is not None and after.rounds_to_goal <= rounds - 1


def _record(traj: Trajectory, k: int, turn: ExpertTurn, env: Any, agrees: bool, optimal: bool) -> Trajectory:
    """The policy's turns before state k as context (not trained), then the expert's turn at k."""
    assert turn.output is not None and turn.action is not None
    res = env.clone().step(turn.action)  # what the expert's action does here (reward, done), on a copy
    context = [dataclasses.replace(s, info={**s.info, LOSS: False}) for s in traj.steps[:k]]
    label = Step(k, traj.steps[k].observation, turn.output, turn.action, float(res.reward), bool(res.done))
    return Trajectory(
        id=f"{traj.id}@{k}",
        env=traj.env,
        task_id=traj.task_id,
        system_prompt=traj.system_prompt,
        first_observation=traj.first_observation,
        steps=[*context, label],
        policy="expert",
        temperature=traj.temperature,
        seed=traj.seed,
        reward=float(res.reward),
        success=False,  # an unfinished episode; SFT keeps it as a correction (meta), not as a success
        status="running",
        meta={
            CORRECTION: {
                "episode": traj.id,
                "state": k,
                "source": turn.source,
                "policy_action": traj.steps[k].action,
                "agrees": agrees,
                "policy_optimal": optimal,
                "rounds_to_goal": turn.rounds_to_goal,
            }
        },
    )


def _drop_orphans(out: Path, done: set[str]) -> int:
    """Remove from `out` the corrections of episodes the rollouts file lacks; how many were dropped."""
    if not out.exists():
        return 0
    records = list(iter_jsonl(out))
    keep = [r for r in records if r.get("meta", {}).get(CORRECTION, {}).get("episode") in done]
    if len(keep) < len(records):
        from agentprm.disk import atomic_write_text

        atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep))
    return len(records) - len(keep)


def collect_corrections(
    policy: Any,
    env_name: str,
    out: str | Path,
    cfg: DaggerConfig,
    *,
    rollouts: str | Path | None = None,
    expert: StateExpert | None = None,
    on_start: Callable[[int], None] | None = None,
    on_episode: Callable[[Trajectory, DaggerSummary], None] | None = None,
) -> DaggerSummary:
    """Roll `policy` out on the first `cfg.n_tasks` training tasks of `env_name` and append the expert's
    corrections of every state it visited to `out` (see the module doc). Resumes from `rollouts`. `expert`:
    the env's state expert for `cfg` (default: made here)."""
    from agentprm.envs import get_spec
    from agentprm.rollout.engine import RolloutConfig
    from agentprm.rollout.jobs import rollout_episodes, todo_pairs
    from agentprm.rollout_io import done_ids

    if cfg.n_tasks < 1:
        raise UserError("--n-tasks must be at least 1")
    spec = get_spec(env_name)
    expert = expert or spec.make_state_expert(cfg.thought_style, cfg.expert_seed)
    out = Path(out)
    rollouts = Path(rollouts) if rollouts is not None else rollouts_path(out)
    if rollouts.resolve() == out.resolve():
        raise UserError(f"--rollouts {rollouts} is the corrections file; give another path")
    maker = spec.maker(cfg.max_rounds)
    replay_env = maker()
    task_ids = replay_env.task_ids("train", cfg.n_tasks)  # training tasks only: test goals stay unseen
    _drop_orphans(out, done_ids(rollouts))
    todo = todo_pairs(task_ids, 1, rollouts)
    total = DaggerSummary(resumed=len(task_ids) - len(todo))
    if on_start:
        on_start(len(todo))
    rcfg = RolloutConfig(
        temperature=cfg.temperature,
        max_new_tokens=cfg.max_new_tokens,
        max_rounds=cfg.max_rounds,
        batch_size=cfg.batch_size,
    )
    with JsonlWriter(out) as corrections, JsonlWriter(rollouts) as episodes:
        for traj in rollout_episodes(policy, maker, todo, cfg=rcfg, seed=cfg.seed):
            records, s = correction_records(
                traj, replay_env, expert, max_rounds=cfg.max_rounds, only_mistakes=cfg.only_mistakes
            )
            for r in records:
                corrections.write(r)
            episodes.write(traj)  # last: its line says the episode's corrections are all written
            s.episodes, s.successes = 1, int(traj.success)
            total.add(s)
            if on_episode:
                on_episode(traj, total)
    return total
