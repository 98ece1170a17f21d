"""`HFPolicy`: any HF causal LM (a dir or a hub name) with its chat template, behind the `Policy` protocol.

The embedded tiny default is saved as an ordinary HF dir, so it loads here exactly as a pretrained
model does. Generation uses `fastgen.decode_batch` (preallocated KV cache, finished rows dropped);
`mode="hf"` / `"hf-static"` use `model.generate` with HF's dynamic / static cache instead (any
architecture; `benchmarks/rollout_throughput.py` compares them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentprm.conversation import Message
from agentprm.errors import UserError
from agentprm.policy.base import Generation, row_seed

META_FILE = "agentprm_policy.json"  # what `agentprm sft` records about a policy dir (env, base, data)
MODES = ("fast", "hf", "hf-static")


def quiet_transformers() -> None:
    """No per-file progress bars from transformers: our commands draw their own."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def cpu_attention(device: str | None) -> str:
    """sdpa everywhere by default. Eager attention was 3x faster per row in a CPU decode step (tiny
    default, batch 32: 0.7 against 2.1 ms, `benchmarks/decode_scaling.py --attn`), but it materialises
    the whole [B, H, L, L] score matrix in a prefill: a BabyAI best-of-8 chunk (64 conversations of up to
    ~5k tokens) grew the pipeline to 24 GB and the kernel killed it (session 4). Pass `attn="eager"` to
    `HFPolicy.load` for short-context decoding; both give the same logits (tests/test_policy.py)."""
    del device  # kept for callers; the choice no longer depends on it
    return "sdpa"


def read_policy_meta(path: str | Path) -> dict[str, Any]:
    f = Path(path) / META_FILE
    return json.loads(f.read_text()) if f.is_file() else {}


def check_tokenizer_fits(tokenizer: Any, model: Any, path: str | Path) -> None:
    """A tokenizer with ids past the model's embedding belongs to another model: fail before generating."""
    n_embed = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > n_embed:
        raise UserError(
            f"the tokenizer in {path} has {len(tokenizer)} tokens but the model embeds {n_embed}: the "
            "tokenizer files belong to another model; copy the tokenizer saved with this model"
        )


def check_trained_env(meta: dict[str, Any], policy: str | Path, env_name: str) -> None:
    """A policy dir records the env its demos came from (`agentprm sft`); another env's policy is bad input."""
    trained_on = meta.get("env")
    if trained_on and trained_on != env_name:
        raise UserError(
            f"policy {policy} was trained on {trained_on} demos; pass --env {trained_on} or train one on {env_name}"
        )


def check_policy_dir(path: str | Path) -> Path:
    """A local policy dir must exist and hold a model config (hub names are not checked here)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"policy dir {p} does not exist; train one with `agentprm sft` or give a model dir")
    if not p.is_dir() or not (p / "config.json").is_file():
        raise UserError(f"{p} holds no model (no config.json); give the dir `agentprm sft --out` wrote")
    return p


class HFPolicy:
    """A causal LM + tokenizer; `generate` renders conversations with the tokenizer's chat template."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str = "hf",
        *,
        batch_size: int = 64,
        mode: str = "fast",
        meta: dict[str, Any] | None = None,
        reuse_kv: bool = True,
        kv_store_bytes: int = 1 << 30,
    ):
        if getattr(tokenizer, "chat_template", None) is None:
            raise UserError(f"tokenizer of {name} has no chat template; use a chat/instruct model or set one")
        if mode not in MODES:
            raise UserError(f"unknown generation mode {mode!r}; choose one of: {', '.join(MODES)}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.mode = mode
        self.meta = meta or {}
        self.stop_ids = _stop_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        from agentprm.policy.fastgen import PrefixStore

        # Keys/values of earlier rounds, so a conversation's history is encoded once, not every round.
        # Must be cleared if the weights change (`self.prefix_store.clear()`).
        self.prefix_store = PrefixStore(kv_store_bytes) if reuse_kv and mode == "fast" else None

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        name: str | None = None,
        attn: str | None = None,
        **kwargs: Any,
    ) -> HFPolicy:
        """Load a policy dir, or a hub model named `hf:org/name` (the hub is not reachable offline).

        `attn`: the attention implementation; default `cpu_attention(device)` (eager on CPU: see there)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = not str(path).startswith("hf:")
        quiet_transformers()
        if local:
            check_policy_dir(path)
        else:
            path = str(path)[3:]
        from safetensors import SafetensorError

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForCausalLM.from_pretrained(
                str(path), dtype=getattr(torch, dtype), attn_implementation=attn or cpu_attention(device)
            )
        except (OSError, SafetensorError, RuntimeError, ValueError) as e:  # missing, cut or mismatched files
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise UserError(
                f"cannot load a causal LM from {path} ({type(e).__name__}: {first}); "
                "its model.safetensors may be cut short: retrain or copy it again"
            ) from None
        check_tokenizer_fits(tokenizer, model, path)
        kwargs.setdefault(
            "kv_store_bytes", prefix_store_budget(model.config, getattr(torch, dtype), kwargs.get("batch_size", 64))
        )
        # transformers types PreTrainedModel.to through a decorator mypy reads wrongly
        return cls(
            model.to(device),  # type: ignore[arg-type]
            tokenizer,
            name or str(path),
            meta=read_policy_meta(path) if local else {},
            **kwargs,
        )

    # -- rendering ------------------------------------------------------------------------------------
    def prompt_ids(self, conversation: list[Message]) -> list[int]:
        """Token ids of the conversation rendered with a generation prompt (the assistant header)."""
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # -- Policy protocol ------------------------------------------------------------------------------
    def generate(
        self,
        conversations: list[list[Message]],
        *,
        n: int = 1,
        temperature: float = 1.0,
        max_new_tokens: int = 128,
        seed: int | Sequence[int] | None = None,
    ) -> list[list[Generation]]:
        """`n` assistant turns per conversation. `seed`: one int for the call, or one per conversation.

        Sample k of conversation i is seeded `row_seed(seed_i, k)` (seed_i = `row_seed(seed, i)` when
        one int is given; its t-th token draws `fastgen.uniform(row seed, t)`), so a row's sample does
        not depend on the batch it ran in. Greedy (temperature 0) ignores seeds.
        """

        from agentprm.policy.fastgen import common_prefix, decode_batch

        if n < 1:
            raise ValueError("n must be at least 1")
        prompts = [self.prompt_ids(c) for c in conversations]
        store = self.prefix_store
        stored = [store.lookup(p) for p in prompts] if store is not None else [None] * len(prompts)
        # What each conversation still has to encode (tokens past its stored prefix).
        todo = [len(p) - (common_prefix(s.ids, p) if s is not None else 0) for p, s in zip(prompts, stored)]
        conv_seeds = _conversation_seeds(seed, len(conversations))
        rows = [(i, k) for i in range(len(conversations)) for k in range(n)]
        # Similar lengths share a batch: less padding, and a short encoded window.
        order = sorted(range(len(rows)), key=lambda j: (todo[rows[j][0]], len(prompts[rows[j][0]])))
        out: list[list[Generation | None]] = [[None] * n for _ in conversations]
        for lo in range(0, len(order), self.batch_size):
            chunk = order[lo : lo + self.batch_size]
            chunk_prompts = [prompts[rows[j][0]] for j in chunk]
            seeds = None
            if temperature > 0 and conv_seeds is not None:
                seeds = [row_seed(conv_seeds[rows[j][0]], rows[j][1]) for j in chunk]
            if self.mode == "fast":
                decoded = decode_batch(
                    self.model,
                    chunk_prompts,
                    max_new_tokens=max_new_tokens,
                    stop_ids=self.stop_ids,
                    temperature=temperature,
                    seeds=seeds,
                    pad_id=self.pad_id,
                    prefixes=[stored[rows[j][0]] for j in chunk],
                    keep_kv=store is not None,
                )
                results = [(d.tokens, d.finished) for d in decoded]
                if store is not None:
                    for j, d in zip(chunk, decoded):
                        assert d.kv is not None  # keep_kv
                        store.add(d.kv)
                        if stored[rows[j][0]] is not None:  # superseded by the longer entry just added
                            store.demote(stored[rows[j][0]])  # type: ignore[arg-type]
            else:
                results = self._hf_generate(chunk_prompts, temperature, max_new_tokens, seeds)
            for j, (toks, finished) in zip(chunk, results):
                i, k = rows[j]
                body = toks[:-1] if finished else toks
                text = self.tokenizer.decode(body, skip_special_tokens=True).strip()
                out[i][k] = Generation(text, len(prompts[i]), len(toks), finished)
        return out  # type: ignore[return-value]

    def _hf_generate(self, prompts, temperature, max_new_tokens, seeds):
        """HF's own `generate` (left padding; dynamic or static cache), for comparison and odd architectures."""
        import torch

        if seeds is not None:  # HF's sampler takes no per-row seed: seed the global RNG once
            torch.manual_seed(int(seeds[0]))
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        kwargs: dict[str, Any] = {}
        if self.mode == "hf-static":
            kwargs["cache_implementation"] = "static"
        with torch.inference_mode():
            seqs = self.model.generate(
                input_ids=ids.to(self.model.device),
                attention_mask=mask.to(self.model.device),
                max_new_tokens=max_new_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_k=None,
                top_p=None,
                eos_token_id=self.stop_ids,
                pad_token_id=self.pad_id,
                **kwargs,
            )
        results = []
        stops = set(self.stop_ids)
        for row in seqs[:, width:].tolist():
            toks: list[int] = []
            finished = False
            for t in row:
                toks.append(t)
                if t in stops:
                    finished = True
                    break
            results.append((toks, finished))
        return results


def kv_bytes_per_token(config: Any, dtype: Any) -> int:
    """Bytes of keys + values one token occupies in every layer's cache (SmolLM2-135M: 30 layers x 3 KV
    heads x 64 dims x 2 = 46 KB in fp32, 23 KB in bf16)."""
    import torch

    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * cfg.num_hidden_layers * heads * head_dim * torch.tensor([], dtype=dtype).element_size()


def prefix_store_budget(config: Any, dtype: Any, batch_size: int, tokens: int = 2048) -> int:
    """The prefix store's byte bound: room for every live conversation of a batch at `tokens` tokens (a
    failed 20-round TextCraft episode reaches ~1k; the rest is slack for the superseded entries LRU drops
    first), at least 1 GiB and at most a quarter of the machine's memory. A smaller bound evicts the
    conversations of the round in flight before their next round can reuse them: every round then
    re-encodes every history (the thrash seen with SmolLM2 at 1 GiB, issue 14)."""
    import os

    want = kv_bytes_per_token(config, dtype) * batch_size * tokens
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 << 30
    return int(min(max(want, 1 << 30), ram // 4))


def _conversation_seeds(seed: int | Sequence[int] | None, n: int) -> list[int] | None:
    if seed is None:
        return None
    if isinstance(seed, int):
        return [row_seed(seed, i) for i in range(n)]
    seeds = list(seed)
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} conversations")
    return seeds


def _stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-turn ids: the tokenizer's eos, the generation config's eos ids, and `<|im_end|>` if known."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif gen_eos:
        ids.update(int(x) for x in gen_eos)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    if not ids:
        raise UserError("the tokenizer has no end-of-turn (eos) token; set tokenizer.eos_token")
    return sorted(ids)
