"""The embedded default's tokenizer: byte-level BPE trained on the env's own text, with a ChatML template.

Saved as an ordinary HF tokenizer, so everything downstream loads it as it loads a pretrained one.

Two ways to cut the text before BPE (`merge`):
- `word` (the default): GPT-2's byte-level split, so no token crosses a space. On an env with few
  distinct words (BabyAI) the merges run out at the words: a ~490-token vocabulary, an observation
  ~150-200 tokens.
- `phrase`: runs of words may merge across spaces ("steps in front of you"), bounded by digits,
  punctuation, newlines and every word in `keep_words`, which stays a pre-token of its own, cut as
  `word` cuts it. `keep_words` are the words the policy writes (its actions), so a name it copies
  from an observation ("grey box 1", "oak logs") is the same ids there and in the action; only the
  text around it (the env's fixed phrasing) is merged. `vocab_size` still bounds the vocabulary.

`split_ids` (either mode): an id-like string (`ID_PATTERN`: 6 or more letters and digits, both present,
e.g. WebShop's `B0UAUZTD1S`) is cut into single characters, apart from its neighbours (a leading space
is a token of its own). Without it, BPE splits such a random id into pieces that depend on its case and
on what precedes it (`" B"` after a space, `"B"` after `[`), so the id a page shows and the id an action
writes are different token sequences; with it they are the same characters (docs/webshop.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

IM_START, IM_END, PAD, EOS = "<|im_start|>", "<|im_end|>", "<|pad|>", "<|endoftext|>"
MERGE_MODES = ("word", "phrase")

# Minimal ChatML: the same shape Qwen2.5 and SmolLM2 use, so one alignment code path serves all.
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# Oniguruma, as `tokenizers` runs it. Whole runs of letters/digits only: "60Hz", "1080P" (shorter) and
# plain words stay as they were.
ID_PATTERN = r"(?=[\p{L}\p{N}]*\p{N})(?=[\p{L}\p{N}]*\p{L})[\p{L}\p{N}]{6,}"
ID_ALONE = rf"(?<![\p{{L}}\p{{N}}]){ID_PATTERN}(?![\p{{L}}\p{{N}}])"  # a whole run of letters and digits


def id_pre_tokenizers() -> list:
    r"""`split_ids`' two steps: isolate each id (bounded by non-alphanumerics), then cut a piece that is
    wholly an id into characters (`\G`: each match starts where the last ended, so only such a piece)."""
    from tokenizers import Regex, pre_tokenizers

    return [
        pre_tokenizers.Split(Regex(ID_ALONE), behavior="isolated"),
        pre_tokenizers.Split(Regex(rf"\A(?={ID_PATTERN}\z).|\G(?!\A)."), behavior="isolated"),
    ]


def strip_ids(text: str) -> str:
    """`text` with each id-like string (`ID_ALONE`, matched by the engine the pre-tokenizer runs) replaced by a
    space."""
    from tokenizers import Regex, pre_tokenizers

    ids = pre_tokenizers.Split(Regex(ID_ALONE), behavior="removed", invert=True)
    out, at = [], 0
    for _, (start, end) in ids.pre_tokenize_str(text):
        out += [text[at:start], " "]
        at = end
    return "".join(out) + text[at:]


def words_of(texts: Iterable[str]) -> set[str]:
    """The words (runs of \\p{L}, found by the regex engine the pre-tokenizer runs) in `texts`."""
    from tokenizers import Regex, pre_tokenizers

    letters = pre_tokenizers.Split(Regex(r"\p{L}+"), behavior="removed", invert=True)
    return {w for t in texts for w, _ in letters.pre_tokenize_str(t)}


def phrase_split_pattern(keep_words: Iterable[str]) -> str:
    """The `phrase` pre-tokenizer's regex (Oniguruma, as `tokenizers` runs it). GPT-2's split, with its
    one-word `' ?\\p{L}+'` widened to a run of words joined by single spaces, except that a word of
    `keep_words` always stands alone (with its leading space, as GPT-2 cuts it)."""
    keep = sorted(set(keep_words))
    if not keep:
        frame = r"\p{L}+"
        alone = ""
    else:
        # Whole words only: `red` is kept, `redstone` is not; (?!\p{L}) is the word's end.
        alt = "|".join(re.escape(w) for w in keep)
        frame = rf"(?!(?:{alt})(?!\p{{L}}))\p{{L}}+"
        alone = rf" ?(?:{alt})(?!\p{{L}})|"
    return rf"{alone} ?{frame}(?: {frame})*| ?\p{{N}}+| ?[^\s\p{{L}}\p{{N}}]+|\s+(?!\S)|\s+"


def _pre_tokenizer(merge: str, keep_words: Iterable[str], split_ids: bool = False):
    from tokenizers import Regex, pre_tokenizers

    first = id_pre_tokenizers() if split_ids else []
    if merge == "word":
        level = pre_tokenizers.ByteLevel(add_prefix_space=False)
        return pre_tokenizers.Sequence([*first, level]) if first else level
    if merge == "phrase":
        split = pre_tokenizers.Split(Regex(phrase_split_pattern(keep_words)), behavior="isolated")
        return pre_tokenizers.Sequence(
            [*first, split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
        )
    from agentprm.errors import UserError

    raise UserError(f"unknown tokenizer merge {merge!r}; choose {' or '.join(MERGE_MODES)}")


def train_chat_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 2048,
    merge: str = "word",
    keep_words: Iterable[str] = (),
    split_ids: bool = False,
):
    """A `PreTrainedTokenizerFast` (byte-level BPE) trained on `texts`, with ChatML special tokens.

    `merge`: `word` or `phrase` (module doc); `keep_words` only matters for `phrase`; `split_ids`: module doc."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = _pre_tokenizer(merge, keep_words, split_ids)
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
