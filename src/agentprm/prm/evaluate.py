"""How well a PRM's scores separate steps of successful from failed trajectories (paper §5.5, Fig. 7)."""

from __future__ import annotations

from dataclasses import dataclass

from agentprm.conversation import trajectory_messages
from agentprm.stats import auroc
from agentprm.trajectory import Trajectory

__all__ = ["Separation", "auroc", "separation"]  # auroc lives in agentprm.stats


@dataclass
class Separation:
    n_success: int
    n_failed: int
    mean_step_success: float  # mean score over every step of successful trajectories
    mean_step_failed: float
    step_auroc: float  # steps of successful vs failed trajectories
    last_step_auroc: float  # the best-of-n signal: last-step score, successful vs failed trajectories


def separation(scorer, trajectories: list[Trajectory]) -> Separation:
    scores = [s.scores for s in scorer.score([trajectory_messages(t) for t in trajectories])]
    ok = [s for s, t in zip(scores, trajectories) if t.success]
    bad = [s for s, t in zip(scores, trajectories) if not t.success]
    flat = lambda rows: [v for row in rows for v in row]  # noqa: E731
    mean = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731
    return Separation(
        len(ok),
        len(bad),
        mean(flat(ok)),
        mean(flat(bad)),
        auroc(flat(ok), flat(bad)),
        auroc([s[-1] for s in ok], [s[-1] for s in bad]),
    )
