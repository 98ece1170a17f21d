"""The PRM: an HF backbone (`AutoModel`, any `from_pretrained` dir) plus a scalar value head.

The score of step t, M(s_t, a_t), is read from the hidden state at the last token of assistant turn t+1
(turn 0 is AgentGym's "OK."), i.e. the template's end-of-turn token (`<|im_end|>`, `<|eot_id|>`), as
`conversation.tokenize_conversation` aligns it. Because the model is causal, that hidden state sees
exactly (s_t, a_t): **one forward pass scores every step of a conversation**.

Saved as an HF dir (backbone + tokenizer) plus `value_head.safetensors` and `prm_config.json`; `load`
rebuilds the same module, so scores after a reload are identical (tested).

Head (paper.md §9 item 4: not described): a linear layer on the last hidden state, initialised to zero
so that an untrained PRM predicts Q = 0 everywhere; `head_activation="none"` (default: the paper speaks of
regression with MSE and no sigmoid) or "sigmoid" (option: squashes to [0, 1]).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agentprm.conversation import Message, tokenize_conversation
from agentprm.errors import BadFileError
from agentprm.prm.base import StepScores

HEAD_FILE = "value_head.safetensors"
CONFIG_FILE = "prm_config.json"
HEAD_ACTIVATIONS = ("none", "sigmoid")


@dataclass
class PRMMeta:
    """What a saved PRM is: stored in `prm_config.json` next to the HF dir."""

    objective: str = "agentprm"
    head_activation: str = "none"
    init_from: str = ""
    max_length: int = 0  # 0: the backbone's max_position_embeddings
    train: dict[str, Any] | None = None  # the training config that made it


@dataclass
class EncodedConversation:
    input_ids: list[int]
    step_index: list[int]  # token index whose hidden state scores step t (last token of assistant turn t+1)


def encode_for_scoring(tokenizer: Any, messages: list[Message]) -> EncodedConversation:
    """Token ids of a conversation and, per agent step, the index its score is read at."""
    tc = tokenize_conversation(tokenizer, messages)
    return EncodedConversation(tc.input_ids, [tc.last_token_of_turn(k) for k in range(1, len(tc.assistant_spans))])


def _quiet_transformers():
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


class ValueHeadPRM(nn.Module):
    def __init__(self, backbone: nn.Module, head_activation: str = "none"):
        super().__init__()
        if head_activation not in HEAD_ACTIVATIONS:
            raise ValueError(f"unknown head_activation {head_activation!r}; choose one of {HEAD_ACTIVATIONS}")
        self.backbone = backbone
        cfg = backbone.config
        hidden = getattr(cfg, "hidden_size", None) or cfg.get_text_config().hidden_size
        self.head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.head_activation = head_activation

    # -- construction / persistence ---------------------------------------------------------------------
    @classmethod
    def from_backbone(cls, path: str | Path, head_activation: str = "none", dtype: torch.dtype | None = None):
        """A fresh PRM on the base model of any HF dir (a causal-LM dir loads without its LM head)."""
        from transformers import AutoModel

        _quiet_transformers()
        backbone = AutoModel.from_pretrained(str(path), dtype=dtype or torch.float32)
        return cls(backbone, head_activation)

    def save(self, out: str | Path, tokenizer: Any, meta: PRMMeta) -> None:
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        _quiet_transformers()
        self.backbone.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(out / HEAD_FILE))
        meta.head_activation = self.head_activation
        (out / CONFIG_FILE).write_text(json.dumps(asdict(meta), indent=2))

    @classmethod
    def load(cls, path: str | Path, dtype: torch.dtype | None = None) -> tuple[ValueHeadPRM, Any, PRMMeta]:
        """(model, tokenizer, meta) of a PRM dir written by `save`."""
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        from safetensors import SafetensorError

        path = Path(path)
        if not (path / HEAD_FILE).is_file() or not (path / CONFIG_FILE).is_file():
            raise BadFileError(f"{path} is not a PRM dir (no {HEAD_FILE} / {CONFIG_FILE}); train one with train-prm")
        try:
            meta = PRMMeta(**json.loads((path / CONFIG_FILE).read_text()))
            model = cls.from_backbone(path, meta.head_activation, dtype)
            model.head.load_state_dict(load_file(str(path / HEAD_FILE)))
        except (OSError, SafetensorError, RuntimeError, ValueError, TypeError) as e:  # cut or mismatched files
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise BadFileError(f"cannot load the PRM in {path} ({type(e).__name__}: {first}); its {HEAD_FILE} or "
                               "model.safetensors may be cut short: retrain it with train-prm (a rerun resumes)") from None
        model.head.to(dtype or torch.float32)
        return model, AutoTokenizer.from_pretrained(str(path)), meta

    # -- forward -------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def token_values(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, L] value of every token position."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        v = self.head(out.last_hidden_state).squeeze(-1).float()
        return torch.sigmoid(v) if self.head_activation == "sigmoid" else v

    def step_values(self, batch: Sequence[EncodedConversation], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass for the batch: ([B, S] step values, [B, S] mask of real steps).

        Right padding keeps every real token at its natural position, so step indices need no shift.
        """
        width = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        att = torch.zeros((len(batch), width), dtype=torch.long)
        n_steps = max((len(e.step_index) for e in batch), default=0)
        idx = torch.zeros((len(batch), max(n_steps, 1)), dtype=torch.long)
        mask = torch.zeros((len(batch), max(n_steps, 1)), dtype=torch.bool)
        for i, e in enumerate(batch):
            ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
            att[i, : len(e.input_ids)] = 1
            idx[i, : len(e.step_index)] = torch.tensor(e.step_index, dtype=torch.long)
            mask[i, : len(e.step_index)] = True
        dev = self.device
        values = self.token_values(ids.to(dev), att.to(dev))
        q = values.gather(1, idx.to(dev))
        return q[:, :n_steps], mask[:, :n_steps].to(dev)


class PRMScorer:
    """The `RewardModel` over a `ValueHeadPRM`: batched, one forward pass per conversation.

    Conversations longer than `max_length` tokens (rare: the backbone's position limit) are scored in one
    pass over their first `max_length` tokens; each step beyond is scored on its own left-truncated window.
    """

    def __init__(self, model: ValueHeadPRM, tokenizer: Any, *, name: str = "prm", batch_tokens: int = 16384,
                 max_length: int = 0):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_tokens = batch_tokens
        limit = getattr(model.backbone.config, "max_position_embeddings", None) or 1 << 30
        self.max_length = min(max_length or limit, limit)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, **kw: Any) -> PRMScorer:
        model, tok, meta = ValueHeadPRM.load(path)
        if device:
            model.to(device)
        return cls(model, tok, name=kw.pop("name", meta.objective), max_length=kw.pop("max_length", meta.max_length), **kw)

    def _split_long(self, e: EncodedConversation) -> list[tuple[EncodedConversation, list[int]]]:
        """(piece, which steps of `e` it scores) pieces that each fit in max_length tokens."""
        L = self.max_length
        if len(e.input_ids) <= L:
            return [(e, list(range(len(e.step_index))))]
        head = [t for t, i in enumerate(e.step_index) if i < L]
        pieces = [(EncodedConversation(e.input_ids[:L], [e.step_index[t] for t in head]), head)] if head else []
        for t, i in enumerate(e.step_index):
            if i >= L:
                pieces.append((EncodedConversation(e.input_ids[i - L + 1 : i + 1], [L - 1]), [t]))
        return pieces

    @torch.no_grad()
    def score_encoded(self, encoded: list[EncodedConversation]) -> list[StepScores]:
        pieces = []  # (conversation index, steps it scores, piece)
        for ci, e in enumerate(encoded):
            for piece, steps in self._split_long(e):
                pieces.append((ci, steps, piece))
        scores: list[list[float]] = [[0.0] * len(e.step_index) for e in encoded]
        tokens = [0] * len(encoded)
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i][2].input_ids))
        start = 0
        while start < len(order):  # length-sorted batches under a token budget (padding stays small)
            end = start + 1
            while end < len(order) and (end - start + 1) * len(pieces[order[end]][2].input_ids) <= self.batch_tokens:
                end += 1
            batch = [pieces[i] for i in order[start:end]]
            q, _ = self.model.step_values([p[2] for p in batch], self.pad_id)
            q = q.cpu().tolist()
            for (ci, steps, piece), row in zip(batch, q, strict=True):
                tokens[ci] += len(piece.input_ids)
                for k, t in enumerate(steps):
                    scores[ci][t] = row[k]
            start = end
        return [StepScores(s, n) for s, n in zip(scores, tokens, strict=True)]

    def score(self, conversations: list[list[Message]]) -> list[StepScores]:
        return self.score_encoded([encode_for_scoring(self.tokenizer, c) for c in conversations])

    def score_candidates(self, conversation: list[Message], actions: list[str]) -> StepScores:
        """M(s_t, a) for each candidate a appended to `conversation` (which ends in a user turn)."""
        if conversation and conversation[-1]["role"] != "user":
            raise ValueError("score_candidates needs a conversation that ends in a user turn (the observation)")
        results = self.score([[*conversation, {"role": "assistant", "content": a}] for a in actions])
        return StepScores([r.scores[-1] for r in results], sum(r.tokens for r in results))
