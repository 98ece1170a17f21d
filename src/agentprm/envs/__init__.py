"""Environments. Each registers an `EnvSpec` here; the import is lazy (see `EnvSpec.factory`)."""

from agentprm.envs.base import REGISTRY, Env, EnvSpec, StepResult, get_spec, make_env, register

register(
    EnvSpec(
        name="textcraft",
        factory="agentprm.envs.textcraft:TextCraftEnv",
        expert="agentprm.envs.textcraft_expert:expert_trajectory",
        description="Minecraft crafting (AgentGym TextCraft semantics over the 1.16.5 recipes)",
    )
)

__all__ = ["REGISTRY", "Env", "EnvSpec", "StepResult", "get_spec", "make_env", "register"]
