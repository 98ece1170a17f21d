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

import hashlib
import json
from collections import OrderedDict
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


def causal_mask(attention_mask: torch.Tensor) -> torch.Tensor | None:
    """None when every row is right-padded (ones, then zeros), else the mask unchanged.

    Under a causal mask a real token never sees a later pad, and positions count from 0 either way, so
    for right-padded rows the padding mask changes nothing at real positions (equal within 1e-5, tested), but
    passing one sends sdpa to its masked kernel: fwd+bwd of the tiny policy on 8 x 1800 tokens took
    3.0 s with the mask and 2.0 s without (2 threads).
    """
    if attention_mask.shape[1] < 2 or bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all()):
        return None
    return attention_mask


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
    """Token ids of a conversation and, per agent step, the index its score is read at.

    Remembered per (tokenizer, conversation): aligning a T-turn conversation renders and encodes 2T
    prefixes, and the pipeline scores the same best-of-N samples with every PRM (all share the
    policy's tokenizer); that was ~40% of a PRM's best-of-16 scoring on BabyAI."""
    key = (_tokenizer_fingerprint(tokenizer), json.dumps(messages, sort_keys=True))
    hit = _ENCODED.get(key)
    if hit is not None:
        _ENCODED.move_to_end(key)
        return EncodedConversation(list(hit.input_ids), list(hit.step_index))
    tc = tokenize_conversation(tokenizer, messages)
    enc = EncodedConversation(tc.input_ids, [tc.last_token_of_turn(k) for k in range(1, len(tc.assistant_spans))])
    _ENCODED[key] = EncodedConversation(list(enc.input_ids), list(enc.step_index))
    while len(_ENCODED) > _ENCODED_MAX:
        _ENCODED.popitem(last=False)
    return enc


_ENCODED: OrderedDict[tuple[str, str], EncodedConversation] = OrderedDict()
_ENCODED_MAX = 4096  # conversations (a few MB of token ids)
_FINGERPRINTS: dict[int, tuple[Any, str]] = {}


def _tokenizer_fingerprint(tokenizer: Any) -> str:
    """What the encoding depends on: the tokenizer's vocabulary/merges/added tokens and chat template
    (equal for the PRMs and the policy they were initialised from, though they are distinct objects)."""
    got = _FINGERPRINTS.get(id(tokenizer))
    if got is not None and got[0] is tokenizer:
        return got[1]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    fp = hashlib.sha256((body + str(getattr(tokenizer, "chat_template", ""))).encode()).hexdigest()
    _FINGERPRINTS[id(tokenizer)] = (tokenizer, fp)
    return fp


def _quiet_transformers():
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


class ValueHeadPRM(nn.Module):
    init_from: str  # set by rl/critic.py: what the PPO critic started from (no class default)

    def __init__(self, backbone: nn.Module, head_activation: str = "none"):
        super().__init__()
        if head_activation not in HEAD_ACTIVATIONS:
            raise ValueError(f"unknown head_activation {head_activation!r}; choose one of {HEAD_ACTIVATIONS}")
        # a transformers model: its config and save_pretrained are read dynamically
        self.backbone: Any = backbone
        cfg: Any = backbone.config
        hidden = getattr(cfg, "hidden_size", None) or cfg.get_text_config().hidden_size
        self.head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.head_activation = head_activation

    # -- construction / persistence ---------------------------------------------------------------------
    @classmethod
    def from_backbone(
        cls, path: str | Path, head_activation: str = "none", dtype: torch.dtype | None = None, attn: str | None = None
    ):
        """A fresh PRM on the base model of any HF dir (a causal-LM dir loads without its LM head).
        `attn`: the attention implementation (None: the transformers default)."""
        from transformers import AutoModel

        _quiet_transformers()
        kw = {"attn_implementation": attn} if attn else {}
        backbone = AutoModel.from_pretrained(str(path), dtype=dtype or torch.float32, **kw)
        return cls(backbone, head_activation)

    def save(self, out: str | Path, tokenizer: Any, meta: PRMMeta) -> None:
        from safetensors.torch import save_file

        from agentprm.disk import atomic_write_text, writing

        out = Path(out)
        with writing(out):
            out.mkdir(parents=True, exist_ok=True)
            _quiet_transformers()
            self.backbone.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(out / HEAD_FILE)
            )
            meta.head_activation = self.head_activation
            # last and whole: its `train.complete` is what marks a finished PRM (prm.train.is_trained)
            atomic_write_text(out / CONFIG_FILE, json.dumps(asdict(meta), indent=2))

    @classmethod
    def load(
        cls, path: str | Path, dtype: torch.dtype | None = None, attn: str | None = None
    ) -> tuple[ValueHeadPRM, Any, PRMMeta]:
        """(model, tokenizer, meta) of a PRM dir written by `save`."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        path = Path(path)
        if not (path / HEAD_FILE).is_file() or not (path / CONFIG_FILE).is_file():
            raise BadFileError(f"{path} is not a PRM dir (no {HEAD_FILE} / {CONFIG_FILE}); train one with train-prm")
        try:
            meta = PRMMeta(**json.loads((path / CONFIG_FILE).read_text()))
            model = cls.from_backbone(path, meta.head_activation, dtype, attn)
            model.head.load_state_dict(load_file(str(path / HEAD_FILE)))
        except (OSError, SafetensorError, RuntimeError, ValueError, TypeError) as e:  # cut or mismatched files
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise BadFileError(
                f"cannot load the PRM in {path} ({type(e).__name__}: {first}); its {HEAD_FILE} or "
                "model.safetensors may be cut short: retrain it with train-prm (a rerun resumes)"
            ) from None
        model.head.to(dtype or torch.float32)
        return model, AutoTokenizer.from_pretrained(str(path)), meta

    # -- forward -------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def token_values(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, L] value of every token position."""
        out = self.backbone(input_ids=input_ids, attention_mask=causal_mask(attention_mask), use_cache=False)
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


@dataclass(eq=False)
class ScoreState:
    """The PRM's keys/values for one scored conversation, stored as a segment on top of its parent's.

    A beam node keeps the state of the candidate it came from; its children are scored from it, so a
    round encodes only each candidate's new tokens (the observation and the candidate turn). The chain
    shares the common history between siblings: memory grows with the search tree, not with the
    number of candidates times their length. `base` tokens of the parent's chain come first, then
    this segment's `ids` (keys/values `kv[2, layers, H_kv, len(ids), D]`). `steps` are the (token
    index, score) of every agent step of the conversation so far.
    """

    parent: ScoreState | None
    base: int
    ids: list[int]
    kv: torch.Tensor
    steps: list[tuple[int, float]]
    text: str = ""  # the conversation as rendered by the chat template (to tokenize only what follows)

    @property
    def length(self) -> int:
        return self.base + len(self.ids)

    @property
    def nbytes(self) -> int:
        """Bytes of this segment alone (the parent's are shared)."""
        return self.kv.numel() * self.kv.element_size()

    def all_ids(self) -> list[int]:
        return (self.parent.all_ids()[: self.base] if self.parent is not None else []) + self.ids

    def shape(self) -> tuple[int, int, torch.dtype]:
        return self.kv.shape[2], self.kv.shape[-1], self.kv.dtype

    def copy_into(self, buf: torch.Tensor, row: int, at: int, n: int) -> None:
        """Write the chain's first `n` tokens into cache row `row` from slot `at` (one copy per segment)."""
        own = n - self.base
        if own > 0:
            buf[:, :, row, :, at + self.base : at + n] = self.kv[:, :, :, :own]
        if self.parent is not None and min(n, self.base) > 0:
            self.parent.copy_into(buf, row, at, min(n, self.base))


class PRMScorer:
    """The `RewardModel` over a `ValueHeadPRM`: batched, one forward pass per conversation.

    Conversations longer than `max_length` tokens (rare: the backbone's position limit) are scored in one
    pass over their first `max_length` tokens; each step beyond is scored on its own left-truncated window.
    """

    def __init__(
        self,
        model: ValueHeadPRM,
        tokenizer: Any,
        *,
        name: str = "prm",
        batch_tokens: int = 16384,
        max_length: int = 0,
        cache_bytes: int = 1 << 28,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_tokens = batch_tokens
        self.cache_bytes = cache_bytes  # bound on one `score_from` batch's key/value cache
        limit = getattr(model.backbone.config, "max_position_embeddings", None) or 1 << 30
        self.max_length = min(max_length or limit, limit)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, **kw: Any) -> PRMScorer:
        model, tok, meta = ValueHeadPRM.load(path, attn=kw.pop("attn", None))
        if device:
            model.to(device)
        return cls(
            model, tok, name=kw.pop("name", meta.objective), max_length=kw.pop("max_length", meta.max_length), **kw
        )

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
            for (ci, steps, piece), row in zip(batch, q.cpu().tolist(), strict=True):
                tokens[ci] += len(piece.input_ids)
                for k, t in enumerate(steps):
                    scores[ci][t] = row[k]
            start = end
        return [StepScores(s, n) for s, n in zip(scores, tokens, strict=True)]

    def score(self, conversations: list[list[Message]]) -> list[StepScores]:
        if not conversations:
            return []
        return self.score_encoded([encode_for_scoring(self.tokenizer, c) for c in conversations])

    @torch.no_grad()
    def score_from(
        self, items: Sequence[tuple[ScoreState | None, list[Message]]]
    ) -> list[tuple[StepScores, ScoreState | None]]:
        """Score each conversation starting from the state of an earlier conversation it extends.

        Only the tokens past the longest common prefix with the state's tokens are encoded (the
        state's keys/values are copied into the cache), so the scores equal `score` of the whole
        conversation (up to float rounding) at a fraction of the tokens; `StepScores.tokens` counts
        the tokens encoded. Returns each conversation's scores and its own state (to extend next
        round). A conversation past `max_length` is scored whole, with no state.
        """
        if not items:
            return []
        from agentprm.conversation import _render

        texts = [_render(self.tokenizer, c) for _, c in items]  # what the next round's text extends
        encoded = [self._encode_from(state, c, text) for (state, c), text in zip(items, texts)]
        out: list[tuple[StepScores, ScoreState | None] | None] = [None] * len(items)
        long = [i for i, e in enumerate(encoded) if len(e.input_ids) > self.max_length]
        for i, r in zip(long, self.score_encoded([encoded[i] for i in long])):
            out[i] = (r, None)
        todo = [i for i in range(len(items)) if out[i] is None]
        # Rows with similar new-token counts share a batch: the encoded window is the longest one.
        states = [items[i][0] for i in range(len(items))]
        new = {i: len(encoded[i].input_ids) - self._reusable(states[i], encoded[i].input_ids) for i in todo}
        todo.sort(key=lambda i: (new[i], len(encoded[i].input_ids)))
        kv_token_bytes = self._kv_token_bytes()
        start = 0
        while start < len(todo):
            end, width, longest = start, 0, 0
            while end < len(todo):
                w, L = max(width, new[todo[end]]), max(longest, len(encoded[todo[end]].input_ids))
                rows = end - start + 1
                if rows > 1 and (rows * w > self.batch_tokens or rows * L * kv_token_bytes > self.cache_bytes):
                    break
                end, width, longest = end + 1, w, L
            batch = todo[start:end]
            for i, res in zip(
                batch,
                self._score_window([encoded[i] for i in batch], [states[i] for i in batch], [texts[i] for i in batch]),
            ):
                out[i] = res
            start = end
        return out  # type: ignore[return-value]

    def _encode_from(self, state: ScoreState | None, messages: list[Message], full: str) -> EncodedConversation:
        """`encode_for_scoring(messages)`, tokenizing only the text past the state's when that is safe.

        Tokenizing the whole conversation renders and encodes every prefix ending in an assistant turn
        (O(turns^2): 77 ms for a 13-step conversation, more than the tiny PRM's forward). Safe: the
        new text starts with a special token (ChatML's `<|im_start|>`, Llama 3's header), where the
        tokenizer splits anyway, so its tokens follow the state's unchanged; anything else (a state
        that is not a prefix, a template without such a boundary) is tokenized whole.
        """
        from agentprm.conversation import _encode, _render

        tok = self.tokenizer
        if state is None or not state.text or getattr(self, "_fast_checked", None) is False:
            return encode_for_scoring(tok, messages)
        suffix = full[len(state.text) :]
        if not full.startswith(state.text) or not any(suffix.startswith(t) for t in self._boundary_tokens()):
            return encode_for_scoring(tok, messages)
        prefix_ids = state.all_ids()
        ids = prefix_ids + _encode(tok, suffix)
        steps = [t for t, _ in state.steps]
        first_assistant = True
        for k, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            if first_assistant:  # turn 0 ("OK.") is not a scored step
                first_assistant = False
                continue
            through = _render(tok, messages[: k + 1]).rstrip()
            if len(through) <= len(state.text):
                continue  # a step the state already holds
            through_ids = prefix_ids + _encode(tok, through[len(state.text) :])
            end = len(through_ids)
            if ids[:end] != through_ids:
                return encode_for_scoring(tok, messages)
            steps.append(end - 1)
        fast = EncodedConversation(ids, steps)
        if getattr(self, "_fast_checked", None) is None:  # once per scorer: this tokenizer splits there
            whole = encode_for_scoring(tok, messages)
            self._fast_checked = whole == fast
            return whole
        return fast if self._fast_checked else encode_for_scoring(tok, messages)

    def _boundary_tokens(self) -> list[str]:
        if not hasattr(self, "_boundaries"):
            tok = self.tokenizer
            added = getattr(tok, "added_tokens_decoder", {}) or {}
            self._boundaries = sorted(
                {str(t) for t in added.values()} | set(tok.all_special_tokens), key=len, reverse=True
            )
        return self._boundaries

    def _reusable(self, state: ScoreState | None, ids: list[int]) -> int:
        from agentprm.policy.fastgen import common_prefix

        return 0 if state is None else min(common_prefix(state.all_ids(), ids), len(ids) - 1)

    def _kv_token_bytes(self) -> int:
        cfg = self.model.backbone.config
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        return 2 * cfg.num_hidden_layers * heads * dim * next(self.model.parameters()).element_size()

    def _score_window(
        self, batch: list[EncodedConversation], states: list[ScoreState | None], texts: list[str]
    ) -> list[tuple[StepScores, ScoreState]]:
        from agentprm.policy.fastgen import DecodeState

        prompts = [e.input_ids for e in batch]
        st = DecodeState(self.model.backbone, prompts, pad_id=self.pad_id, prefixes=states)
        hidden = st.prefill().last_hidden_state  # [B, window, H]
        values = self.model.head(hidden).squeeze(-1).float()
        if self.model.head_activation == "sigmoid":
            values = torch.sigmoid(values)
        values = values.cpu()
        res = []
        for i, (e, state) in enumerate(zip(batch, states)):
            r = st.reuse[i]
            kept = [(t, v) for t, v in state.steps if t < r] if state is not None and r else []
            if [t for t, _ in kept] != [t for t in e.step_index if t < r]:  # cannot happen for a true prefix
                raise RuntimeError("stored PRM steps disagree with the conversation's steps")
            steps = kept + [(t, float(values[i, st.slot(i, t) - st.s0])) for t in e.step_index if t >= r]
            a = st.slot(i, r)
            kv = st.cache.buf[:, :, i, :, a : st.slot(i, len(e.input_ids))].clone()  # type: ignore[index]
            parent = state if r else None
            res.append(
                (
                    StepScores([v for _, v in steps], len(e.input_ids) - r),
                    ScoreState(parent, r, e.input_ids[r:], kv, steps, texts[i]),
                )
            )
        st.cache.release()  # the states hold copies
        return res

    def score_candidates(self, conversation: list[Message], actions: list[str]) -> StepScores:
        """M(s_t, a) for each candidate a appended to `conversation` (which ends in a user turn)."""
        if conversation and conversation[-1]["role"] != "user":
            raise ValueError("score_candidates needs a conversation that ends in a user turn (the observation)")
        results = self.score([[*conversation, {"role": "assistant", "content": a}] for a in actions])
        return StepScores([r.scores[-1] for r in results], sum(r.tokens for r in results))
