"""AgentGym's conversation format and the token alignment every model consumer shares.

A conversation is a list of ``{"role", "content"}`` messages: the env's system prompt as the first user
turn, an assistant acknowledgement, then observation (user) and action (assistant) turns. It is
rendered by the tokenizer's own chat template, so pretrained models use theirs and the embedded tiny
tokenizer carries a minimal ChatML one: one code path for both.

`assistant_spans` is the single place that decides which tokens belong to assistant turn t. The SFT
loss mask (train on assistant tokens) and the PRM score index (the last token of assistant turn t) both
derive from it, so they cannot drift apart.

An assistant message may carry AgentGym's per-turn flag `"loss": False`: the turn is context, not a
training target (a DAgger correction record's history of the policy's own turns, `policy/dagger.py`).
Messages without the flag train, as before; a step marks it with `Step.info["loss"] = False`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentprm.trajectory import Trajectory

ACK = "OK."  # AgentGym's assistant reply to the system-prompt turn
LOSS = "loss"  # AgentGym's per-turn flag: False on an assistant turn that is not trained on
# Trajectory.meta key of a correction record (`policy/dagger.py`): a policy's unfinished episode whose last
# turn is the expert's; SFT trains on it (that turn only) though the episode did not succeed.
CORRECTION = "correction"

Message = dict[str, Any]  # role and content (str); an assistant turn may add LOSS (bool)


def initial_messages(system_prompt: str, first_observation: str) -> list[Message]:
    return [
        {"role": "user", "content": system_prompt},
        {"role": "assistant", "content": ACK},
        {"role": "user", "content": first_observation},
    ]


def trajectory_messages(traj: Trajectory, upto_step: int | None = None) -> list[Message]:
    """Messages of `traj` up to and including assistant turn `upto_step` (all turns when None).

    The PRM input for step t, (s_t, a_t), is `trajectory_messages(traj, t)`: it ends with the action,
    before the env's answer to it.
    """
    msgs = initial_messages(traj.system_prompt, traj.first_observation)
    last = len(traj.steps) - 1 if upto_step is None else upto_step
    for s in traj.steps[: last + 1]:
        if s.t > 0:
            msgs.append({"role": "user", "content": s.observation})
        msgs.append({"role": "assistant", "content": s.output})
        if s.info.get(LOSS) is False:
            msgs[-1][LOSS] = False  # only where marked: unmarked conversations stay as they were
    return msgs


def trains(message: Message) -> bool:
    """Whether an assistant message is a training target (no flag: yes)."""
    return message.get(LOSS, True) is not False


def to_agentgym(traj: Trajectory) -> dict[str, Any]:
    """AgentGym's conversation format: {"conversations": [{"from", "loss", "value"}...], "item_id"}."""
    conv = []
    for m in trajectory_messages(traj):
        is_gpt = m["role"] == "assistant"
        conv.append({"from": "gpt" if is_gpt else "human", "loss": is_gpt and trains(m), "value": m["content"]})
    return {"conversations": conv, "item_id": traj.task_id, "reward": traj.reward, "success": traj.success}


def step_messages(system_prompt: str, observations: list[str], outputs: list[str]) -> list[Message]:
    """Messages for a history given as parallel lists; len(observations) is len(outputs) or one more."""
    msgs = initial_messages(system_prompt, observations[0])
    for i, out in enumerate(outputs):
        if i > 0:
            msgs.append({"role": "user", "content": observations[i]})
        msgs.append({"role": "assistant", "content": out})
    if len(observations) == len(outputs) + 1 and len(outputs) > 0:
        msgs.append({"role": "user", "content": observations[-1]})
    return msgs


@dataclass
class TokenizedConversation:
    input_ids: list[int]
    # (start, end) token offsets of each assistant turn's content, end exclusive; end - 1 is the turn's
    # last token (the template's end-of-turn token where it has one, e.g. <|im_end|>).
    assistant_spans: list[tuple[int, int]]

    def last_token_of_turn(self, k: int) -> int:
        return self.assistant_spans[k][1] - 1


def _render(tokenizer: Any, messages: list[Message], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _encode(tokenizer: Any, text: str) -> list[int]:
    # The template already wrote any BOS/special tokens as text.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def tokenize_conversation(tokenizer: Any, messages: list[Message]) -> TokenizedConversation:
    """Token ids of the rendered conversation and the span of every assistant turn.

    Spans come from rendering prefixes of the conversation: turn k starts where the rendering of the
    messages before it plus the generation prompt ends, and ends where the rendering through it ends
    (trailing whitespace after the end-of-turn token excluded). Templates that are not prefix-consistent
    (a later turn changes how an earlier one renders) are refused with a clear error rather than
    silently misaligned.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("tokenizer has no chat_template: give a chat model or set tokenizer.chat_template")
    full_text = _render(tokenizer, messages)
    ids = _encode(tokenizer, full_text)
    spans: list[tuple[int, int]] = []
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:k], add_generation_prompt=True) if k else ""
        through = _render(tokenizer, messages[: k + 1]).rstrip()
        if not full_text.startswith(through) or not through.startswith(before):
            raise ValueError("chat template is not prefix-consistent; cannot align assistant turns")
        start = len(_encode(tokenizer, before)) if before else 0
        through_ids = _encode(tokenizer, through)
        if ids[: len(through_ids)] != through_ids:
            raise ValueError("tokenization of a conversation prefix differs from the full conversation")
        spans.append((start, len(through_ids)))
    return TokenizedConversation(ids, spans)
