"""Scripted fakes (env, policy, reward model) so search, labels and rollouts are tested in milliseconds."""

from agentprm.testing.fakes import ScriptedEnv, ScriptedPolicy, ScriptedRewardModel

__all__ = ["ScriptedEnv", "ScriptedPolicy", "ScriptedRewardModel"]
