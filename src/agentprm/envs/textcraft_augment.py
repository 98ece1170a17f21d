"""Renamed copies of TextCraft demos: the same episode with the item words consistently swapped.

Why: a small policy trained from scratch on expert demos memorises recipes of the train goals and,
on held-out goals, writes item names it saw as goals instead of copying them from the recipe list
(docs/policy.md). In a renamed copy every item word (`oak`, `planks`, `hoe`, ...) is replaced, in
the whole conversation, by another item word under one random injective map, so the copy is a
consistent crafting world in which recall is useless and only reading the observation works.
Word-level (not item-level) renaming keeps TextCraft's generic ingredients consistent: `oak planks`
still satisfies `planks` when both words are mapped alike, and `minecraft:oak_planks` in the env's
replies is renamed word by word too.

A renamed copy is SFT data, not an env episode: its `task_id` is `<task>~rename<k>`, its meta says
`augmented: "rename-items"` and names the source demo. The system prompt is kept as it is.
"""

from __future__ import annotations

import dataclasses
import random
import re
from functools import lru_cache

from agentprm.trajectory import Trajectory

# Words that appear in item names but also carry the env's grammar or are not names on their own.
_KEEP = frozenset({"minecraft", "of", "on", "a", "the", "and", "with", "o", "s"})
# A lower-case word not glued to other letters: `acacia` and `planks` in `minecraft:acacia_planks`,
# but not `ot` in `Got` (capitalised env words are never item words).
_WORD = re.compile(r"(?<![A-Za-z])[a-z]+(?![A-Za-z])")


@lru_cache(maxsize=1)
def item_words() -> tuple[str, ...]:
    """Every word of every item and tag name in TextCraft's recipe book, sorted."""
    from agentprm.envs.textcraft import item_text, load_recipe_book

    book = load_recipe_book()
    names = set(book.items) | set(book.tags)
    words = {w for n in names for w in _WORD.findall(item_text(n))}
    return tuple(sorted(words - _KEEP))


def rename_words(text: str, mapping: dict[str, str]) -> str:
    return _WORD.sub(lambda m: mapping.get(m.group(0), m.group(0)), text)


def rename_items(
    traj: Trajectory, rng: random.Random, copy_index: int = 0, vocabulary: tuple[str, ...] | None = None
) -> Trajectory:
    """A copy of `traj` whose item words are replaced under one random injective map."""
    vocab = vocabulary if vocabulary is not None else item_words()
    known = set(vocab)
    texts = [traj.first_observation] + [t for s in traj.steps for t in (s.observation, s.output, s.action)]
    present = sorted({w for t in texts for w in _WORD.findall(t) if w in known})
    mapping = dict(zip(present, rng.sample(vocab, len(present))))
    steps = [
        dataclasses.replace(
            s,
            observation=rename_words(s.observation, mapping),
            output=rename_words(s.output, mapping),
            action=rename_words(s.action, mapping),
        )
        for s in traj.steps
    ]
    meta = {**traj.meta, "augmented": "rename-items", "source": traj.id}
    return dataclasses.replace(
        traj,
        id=f"{traj.id}~rename{copy_index}",
        task_id=f"{traj.task_id}~rename{copy_index}",
        first_observation=rename_words(traj.first_observation, mapping),
        steps=steps,
        final_observation=rename_words(traj.final_observation, mapping),
        meta=meta,
    )
