"""Reinforcement learning with reward-model rewards: per-turn rewards (`rewards`), a value critic
(`critic`) and turn-level PPO on the project's rollout engine (`ppo`); `report` draws Figure 5."""
