"""Rollouts: the batched engine (`engine.py`) and the jobs built on it (`jobs.py`: collect, eval)."""

from agentprm.rollout.engine import (
    Episode,
    RolloutConfig,
    continue_episode,
    fork,
    new_episode,
    run_episodes,
    step_round,
)

__all__ = ["Episode", "RolloutConfig", "continue_episode", "fork", "new_episode", "run_episodes", "step_round"]
