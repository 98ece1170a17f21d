"""`agentprm play`: one episode in the terminal, typed by a person or acted by a policy, with the PRM's
score of every step and its change from the step before (plain text through rich, no full-screen UI).

The score of step t is M(s_t, a_t): the PRM reads the conversation up to and including the action,
before the env answers, exactly as best-of-n and beam search score it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentprm.conversation import trajectory_messages
from agentprm.trajectory import Step, Trajectory


@dataclass
class PlayResult:
    traj: Trajectory
    scores: list[float] = field(default_factory=list)
    ended: str = ""  # "success" | "episode over" | "no more rounds" | "stopped" | "env error"


def score_line(t: int, score: float, prev: float | None) -> str:
    delta = "" if prev is None else f" (change {score - prev:+.4f} from step {t - 1})"
    return f"PRM score of step {t}: {score:.4f}{delta}"


def play_episode(
    env: Any,
    task_id: str,
    read_action: Callable[[str], str | None],
    *,
    rm: Any = None,
    policy: Any = None,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    console: Any = None,
) -> PlayResult:
    """Run one episode of `env` on `task_id`. Each round the action comes from `policy` (when given) or
    from `read_action(prompt)` (None or "quit"/"exit" stops). With `rm`, each step's score is printed
    with its change from the previous step. An env that raises ends the episode as `env_error` (shown,
    never a silent reward of 0)."""
    from rich.console import Console

    con = console or Console(highlight=False)
    first = env.reset(task_id)
    traj = Trajectory.begin(env, task_id, first, id=f"{task_id}:play", policy=getattr(policy, "name", "human"))
    con.print(env.system_prompt, "\n", markup=False)
    con.print(first, markup=False)
    res = PlayResult(traj)
    obs = first
    for rnd in range(1, env.max_rounds + 1):
        head = f"[{rnd}/{env.max_rounds}]"
        if policy is not None:
            gen = policy.generate(
                [_next_prompt(traj, obs)], n=1, temperature=temperature, max_new_tokens=max_new_tokens
            )[0][0]
            output = gen.text
            con.print(f"\n{head} policy> {output}", markup=False)
        else:
            typed = read_action(f"\n{head} action> ")
            if typed is None or typed.strip() in ("quit", "exit"):
                res.ended = "stopped"
                break
            output = typed.strip()
        step = Step(t=len(traj.steps), observation=obs, output=output, action=env.parse_action(output))
        traj.steps.append(step)
        if rm is not None:
            score = float(rm.score([trajectory_messages(traj)])[0].scores[-1])
            prev = res.scores[-1] if res.scores else None
            res.scores.append(score)
            con.print(score_line(step.t, score, prev), markup=False)
        try:
            out = env.step(step.action)
        except Exception as e:  # the env's failure is the episode's outcome, shown as such
            step.env_error = f"{type(e).__name__}: {e}"
            traj.status, res.ended = "env_error", "env error"
            con.print(f"env error: {step.env_error}", markup=False)
            break
        step.reward, step.done = out.reward, out.done
        obs = out.observation
        con.print(obs, markup=False)
        con.print(f"reward={out.reward} done={out.done}", markup=False)
        if out.done:
            traj.reward, traj.status = out.reward, "done"
            traj.success = bool(env.is_success(out.reward, out.done))
            res.ended = "success" if traj.success else "episode over"
            break
    else:
        traj.status, res.ended = "max_rounds", "no more rounds"
    traj.final_observation = obs
    con.print(res.ended, markup=False)
    return res


def _next_prompt(traj: Trajectory, obs: str) -> list[dict[str, str]]:
    """The conversation the policy answers: every turn so far, ending with the current observation."""
    from agentprm.conversation import step_messages

    return step_messages(
        traj.system_prompt, [*(s.observation for s in traj.steps), obs], [s.output for s in traj.steps]
    )
