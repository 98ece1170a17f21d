"""Adapters that hand agentprm envs and reward models to external RL engines (each needs its extra)."""
