"""Environments. Each registers an `EnvSpec` here; the import is lazy (see `EnvSpec.factory`)."""

from agentprm.envs.base import REGISTRY, Env, EnvSpec, StepResult, get_spec, make_env, register, register_prefix

register(
    EnvSpec(
        name="textcraft",
        factory="agentprm.envs.textcraft:TextCraftEnv",
        expert="agentprm.envs.textcraft_expert:expert_trajectory",
        expert_observation_only=True,
        augmenter="agentprm.envs.textcraft_augment:rename_items",
        state_expert="agentprm.envs.textcraft_expert:state_expert",
        description="Minecraft crafting (AgentGym TextCraft semantics over the 1.16.5 recipes)",
    )
)

register(
    EnvSpec(
        name="webshop",
        factory="agentprm.envs.webshop.env:WebShopEnv",
        expert="agentprm.envs.webshop.expert:expert_trajectory",
        metric="success",
        description="Web shopping (WebShop/AgentGym semantics; synthetic catalogue, or a real data dir via "
        "AGENTPRM_WEBSHOP_DATA)",
    )
)

register(
    EnvSpec(
        name="babyai",
        factory="agentprm.envs.babyai:BabyAIEnv",
        expert="agentprm.envs.babyai_expert:expert_trajectory",
        metric="reward",
        demos_keep_failures=False,
        description="BabyAI grid worlds, 40 levels (AgentGym's text wrapper and macro actions over minigrid)",
    )
)

register(
    EnvSpec(
        name="math",
        factory="agentprm.envs.math.env:MathEnv",
        expert="agentprm.envs.math.env:expert_trajectory",
        metric="success",
        description="Math word problems, one reasoning step per turn (generated GSM8K-style problems, or a "
        "GSM8K data dir via AGENTPRM_MATH_DATA)",
    )
)

# A user's AgentGym server (envs/agentgym): any of its envs, by URL.
register_prefix(
    "agentgym:", "agentprm.envs.agentgym:agentgym_spec", "an AgentGym server: agentgym:<name>@http://HOST:PORT"
)

__all__ = ["REGISTRY", "Env", "EnvSpec", "StepResult", "get_spec", "make_env", "register"]
