"""The embedded default policy: a small Llama built from a config in code, with a tokenizer trained on
the demos' own text. Saved as an ordinary HF dir, so everything downstream loads it as it loads a
pretrained model (`HFPolicy.load`).

Sizes are in `TinyPolicyConfig`; the defaults follow the measured starting point in
`shared/stack.md` (h128, 4 layers, 4 heads: about 1.2 M parameters with a ~1.3k-token vocab).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentprm.conversation import Message
from agentprm.policy.tokenizer import train_chat_tokenizer


@dataclass
class TinyPolicyConfig:
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    vocab_size: int = 2048  # asked of the BPE trainer; it stops earlier on small corpora
    max_position_embeddings: int = 4096  # RoPE: no parameters, only the longest context allowed


def conversation_texts(conversations: Iterable[list[Message]]) -> Iterable[str]:
    """The texts a tokenizer should learn: every message's content (roles and markup are special/short)."""
    yield "user assistant system"
    for conv in conversations:
        for m in conv:
            yield m["content"]


def build_tiny(conversations: list[list[Message]], cfg: TinyPolicyConfig, seed: int = 0):
    """A fresh (untrained) Llama and its tokenizer trained on `conversations`: (model, tokenizer)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_chat_tokenizer(conversation_texts(conversations), vocab_size=cfg.vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,  # the embedding table is most of a tiny model: share it with the head
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
