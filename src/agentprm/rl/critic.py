"""The PPO critic: the PRM's own model class (`prm.model.ValueHeadPRM`) read at the state, not the action.

V(s_t) is the value head on the hidden state of the last token before assistant turn t's content (the
end of the generation prompt), so it sees exactly the history s_t; the PRM reads Q(s_t, a_t) at the end
of the turn. Same class, same alignment source (`conversation.tokenize_conversation`), one position
earlier.

Initialisation (paper.md §9.10: not given): `prm` starts from the reward model's weights (backbone and
head: a critic that already ranks states), `policy` from the SFT policy's backbone with a zero head
(the classic PPO choice when no reward model exists). `auto` (default) takes `prm` when a PRM dir is
given, else `policy`.
"""

from __future__ import annotations

from pathlib import Path

from agentprm.conversation import TokenizedConversation
from agentprm.errors import UserError
from agentprm.prm.model import ValueHeadPRM

CRITIC_INITS = ("auto", "prm", "policy")


def value_positions(tc: TokenizedConversation) -> list[int]:
    """Token index whose hidden state gives V(s_t), per agent turn t (assistant turn 0 is AgentGym's "OK.")."""
    return [start - 1 for start, _ in tc.assistant_spans[1:]]


def build_critic(policy_dir: str | Path, prm_dir: str | Path | None = None, init: str = "auto") -> ValueHeadPRM:
    """A trainable critic initialised as `init` says (see the module docstring)."""
    if init not in CRITIC_INITS:
        raise UserError(f"unknown critic init {init!r}; choose one of {', '.join(CRITIC_INITS)}")
    if init == "auto":
        init = "prm" if prm_dir is not None and (Path(prm_dir) / "value_head.safetensors").is_file() else "policy"
    if init == "prm":
        if prm_dir is None:
            raise UserError("--critic-init prm needs --rm DIR (a trained PRM); or use --critic-init policy")
        model, _, _ = ValueHeadPRM.load(prm_dir)
    else:
        model = ValueHeadPRM.from_backbone(policy_dir)
    model.init_from = init  # recorded in the run's config
    return model
