"""Loading the policy and reward model a search uses, from what the user names on the command line.

The HF policy (`agentprm.policy.hf`) and the trained PRM (`agentprm.prm.model`) live in their own
areas; they are imported lazily so search works (and is tested) with any object implementing the
protocols, and a missing backend ends in one line naming it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from agentprm.errors import UserError
from agentprm.policy.base import Policy
from agentprm.prm.base import RewardModel
from agentprm.search.random_rm import RandomRewardModel


def _import(module: str, attr: str, what: str) -> Any:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module.startswith(e.name):
            raise UserError(f"{what} needs {module}, which this install does not have; update agentprm") from None
        raise
    if not hasattr(mod, attr):
        raise UserError(f"{what} needs {module}.{attr}, which this install does not have; update agentprm")
    return getattr(mod, attr)


def load_policy(path: str | Path, backend: str = "hf") -> Policy:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"policy directory {path} does not exist; give --policy a model dir (e.g. runs/NAME/policy)")
    if backend != "hf":  # vLLM (GPU extra): agentprm.policy.vllm
        return _import("agentprm.policy.vllm", "load_policy_backend", "the --backend option")(path, backend)
    hf_policy = _import("agentprm.policy.hf", "HFPolicy", "loading a policy")
    return hf_policy.load(str(path))


def load_reward_model(spec: str) -> RewardModel:
    """`random` or `random:SEED` for the random scorer, an http(s) URL of a PRM server, otherwise a PRM directory."""
    if spec == "random" or spec.startswith("random:"):
        _, _, seed = spec.partition(":")
        try:
            return RandomRewardModel(int(seed or 0))
        except ValueError:
            raise UserError(f"bad --rm {spec!r}: use random or random:SEED") from None
    if spec.startswith(("http://", "https://")):  # a PRM served by `agentprm serve-prm`
        return _import("agentprm.prm.client", "RemoteRewardModel", "a reward model server")(spec)
    path = Path(spec)
    if not path.is_dir():
        raise UserError(
            f"reward model directory {path} does not exist; give --rm a PRM dir (e.g. runs/NAME/prm/agentprm) or random"
        )
    scorer = _import("agentprm.prm.model", "PRMScorer", "loading a reward model")
    return scorer.load(str(path), name=path.name)
