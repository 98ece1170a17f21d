"""The embedded default policy: a small Llama built from a config in code, with a tokenizer trained on
the demos' own text. Saved as an ordinary HF dir, so everything downstream loads it as it loads a
pretrained model (`HFPolicy.load`).

Sizes are in `TinyPolicyConfig`; the defaults follow the measured starting point in
`shared/stack.md` (h128, 4 layers, 4 heads: about 1.2 M parameters with a ~1.3k-token vocab).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentprm.conversation import ACK, Message
from agentprm.errors import UserError
from agentprm.policy.tokenizer import MERGE_MODES, strip_ids, train_chat_tokenizer, words_of


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
    # word: no token crosses a space (GPT-2's split). phrase: the env's fixed wording merges across
    # spaces ("steps in front of you"), every word the demos' assistant turns write stays its own
    # pre-token, so copied names are the same ids in observation and action (policy/tokenizer.py).
    tokenizer_merge: str = "word"
    # Id-like strings (letters and digits, 6+ long, e.g. WebShop's product ids) cut into single characters,
    # the same tokens wherever they appear, so an action can copy the id the page shows (policy/tokenizer.py).
    split_ids: bool = False

    def __post_init__(self) -> None:
        if self.tokenizer_merge not in MERGE_MODES:
            raise UserError(
                f"tokenizer_merge {self.tokenizer_merge!r} is not one of {', '.join(MERGE_MODES)}; fix "
                "sft.tiny.tokenizer_merge in the config or `agentprm sft --tokenizer-merge`"
            )


def conversation_texts(
    conversations: Iterable[list[Message]], skip: frozenset[str] = frozenset(), roles: bool = False
) -> Iterable[str]:
    """The texts a tokenizer should learn: every message's content (markup is special). `roles`: also each
    message's role as the template writes it (alone after <|im_start|>), as often as it occurs, so it is one
    token; else (`word`, kept as it was) one line of role names, where "assistant" came out 3 tokens."""
    if not roles:
        yield "user assistant system"
    for conv in conversations:
        for m in conv:
            if roles:
                yield m["role"]
            if m["content"] not in skip:
                yield m["content"]


def assistant_words(conversations: Iterable[list[Message]], skip_ids: bool = False) -> set[str]:
    """The words the policy writes (its turns but the system-prompt acknowledgement): what `phrase` keeps whole.
    `skip_ids`: not the letter runs of id-like strings (`split_ids` cuts those into characters anyway)."""
    texts = (m["content"] for c in conversations for m in c if m["role"] == "assistant" and m["content"] != ACK)
    return words_of(strip_ids(t) for t in texts) if skip_ids else words_of(texts)


def system_prompts(conversations: list[list[Message]]) -> list[str]:
    return sorted({c[0]["content"] for c in conversations if c and c[0]["role"] == "user"})


def build_tokenizer(conversations: list[list[Message]], cfg: TinyPolicyConfig):
    """The tiny model's tokenizer, trained on `conversations` as `cfg` says (merge mode, vocab, prompt token)."""
    prompts = system_prompts(conversations) if cfg.system_prompt_token else []
    tokenizer = train_chat_tokenizer(
        conversation_texts(conversations, frozenset(prompts), roles=cfg.tokenizer_merge == "phrase"),
        vocab_size=cfg.vocab_size,
        merge=cfg.tokenizer_merge,
        keep_words=assistant_words(conversations, cfg.split_ids) if cfg.tokenizer_merge == "phrase" else (),
        split_ids=cfg.split_ids,
    )
    if prompts:
        from tokenizers import AddedToken

        tokenizer.add_tokens([AddedToken(p, special=False, normalized=False) for p in prompts])
    return tokenizer


def build_tiny(conversations: list[list[Message]], cfg: TinyPolicyConfig, seed: int = 0):
    """A fresh (untrained) Llama and its tokenizer trained on `conversations`: (model, tokenizer)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(conversations, cfg)
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
