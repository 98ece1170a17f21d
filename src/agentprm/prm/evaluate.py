"""How well a PRM's scores separate steps of successful from failed trajectories (paper §5.5, Fig. 7)."""

from __future__ import annotations

from dataclasses import dataclass

from agentprm.conversation import trajectory_messages
from agentprm.trajectory import Trajectory


def auroc(pos: list[float], neg: list[float]) -> float:
    """P(score of a random positive > a random negative), ties counting ½ (Mann-Whitney U / n·m)."""
    if not pos or not neg:
        return float("nan")
    ranked = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        avg_rank = (i + j + 1) / 2  # 1-based average rank of the tie block
        rank_sum += avg_rank * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    n, m = len(pos), len(neg)
    return (rank_sum - n * (n + 1) / 2) / (n * m)


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
    return Separation(len(ok), len(bad), mean(flat(ok)), mean(flat(bad)), auroc(flat(ok), flat(bad)),
                      auroc([s[-1] for s in ok], [s[-1] for s in bad]))
