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
    # The env's system prompt (the first user turn, the same in every episode) becomes ONE token:
    # TextCraft's is ~250 BPE tokens, a third of an average demo, re-read at every turn of every
    # rollout. Any other text still tokenises normally, so a changed prompt is merely longer.
    system_prompt_token: bool = True


def conversation_texts(conversations: Iterable[list[Message]], skip: frozenset[str] = frozenset()) -> Iterable[str]:
    """The texts a tokenizer should learn: every message's content (roles and markup are special/short)."""
    yield "user assistant system"
    for conv in conversations:
        for m in conv:
            if m["content"] not in skip:
                yield m["content"]


def system_prompts(conversations: list[list[Message]]) -> list[str]:
    return sorted({c[0]["content"] for c in conversations if c and c[0]["role"] == "user"})


def build_tiny(conversations: list[list[Message]], cfg: TinyPolicyConfig, seed: int = 0):
    """A fresh (untrained) Llama and its tokenizer trained on `conversations`: (model, tokenizer)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    prompts = system_prompts(conversations) if cfg.system_prompt_token else []
    tokenizer = train_chat_tokenizer(conversation_texts(conversations, frozenset(prompts)), vocab_size=cfg.vocab_size)
    if prompts:
        from tokenizers import AddedToken

        tokenizer.add_tokens([AddedToken(p, special=False, normalized=False) for p in prompts])
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
