"""Search with a reward model: greedy, best-of-n and step-level beam search, batched across tasks.

Every strategy takes the protocols only (`Policy`, `RewardModel`, an env factory), runs all tasks in
lock-step rounds, and returns one `SearchResult` per task: the chosen `Trajectory` and its compute.
`run_search` (in `agentprm.search.runner`) is the resumable, chunked driver the CLI and pipeline call.
"""

from agentprm.search.beam import BeamConfig, beam_search
from agentprm.search.best_of_n import (
    AGGREGATIONS,
    BestOfNConfig,
    Candidate,
    CurvePoint,
    aggregate,
    best_of_n,
    bon_curve,
    budgets_upto,
    candidates_of,
    sample_candidates,
    select,
    select_best_of_n,
)
from agentprm.search.core import Node, SearchResult
from agentprm.search.efficiency import Ratio, budget_to_reach, efficiency_ratios, mean_curve
from agentprm.search.greedy import GreedyConfig, greedy
from agentprm.search.random_rm import RandomRewardModel

__all__ = [
    "AGGREGATIONS",
    "BeamConfig",
    "BestOfNConfig",
    "Candidate",
    "CurvePoint",
    "GreedyConfig",
    "Node",
    "RandomRewardModel",
    "Ratio",
    "SearchResult",
    "aggregate",
    "beam_search",
    "best_of_n",
    "bon_curve",
    "budget_to_reach",
    "budgets_upto",
    "candidates_of",
    "efficiency_ratios",
    "greedy",
    "mean_curve",
    "sample_candidates",
    "select",
    "select_best_of_n",
]
