"""The embedded default's tokenizer: byte-level BPE trained on the env's own text, with a ChatML template.

Saved as an ordinary HF tokenizer, so everything downstream loads it as it loads a pretrained one.
"""

from __future__ import annotations

from collections.abc import Iterable

IM_START, IM_END, PAD, EOS = "<|im_start|>", "<|im_end|>", "<|pad|>", "<|endoftext|>"

# Minimal ChatML: the same shape Qwen2.5 and SmolLM2 use, so one alignment code path serves all.
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_chat_tokenizer(texts: Iterable[str], vocab_size: int = 2048):
    """A `PreTrainedTokenizerFast` (byte-level BPE) trained on `texts`, with ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=IM_END,  # generation stops at the end of the assistant turn
        bos_token=None,
        unk_token=None,
        additional_special_tokens=[IM_START, EOS],
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.padding_side = "left"
    return fast
