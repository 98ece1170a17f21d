"""The offline default: seeded multi-step arithmetic word problems with GSM8K-style expert solutions.

GSM8K is not reachable from these machines, so the embedded default generates its own problems. Each
problem has 2-6 solution lines, each one calculation written as GSM8K writes them ("Mia has 12 + 5 =
17 apples."), then the answer line `#### N`. Three kinds, each with several phrasings per operation:

- chain: one person's count changes (buys more, gives away, doubles, shares equally), optionally
  starting from boxes of equal size and ending with a friend who has more or fewer;
- money: items at a price each (and maybe one at a fixed price), the total, the change from a bill;
- pair: two or three people whose counts are given relative to each other, and the total.

Numbers stay small (start values up to 20, other operands up to 10, multipliers 2-4, prices up to $9,
every intermediate 1..100, divisions exact), so a ~1M-parameter policy trained from scratch can learn
the format and many single calculations while chaining 4-6 of them stays hard: headroom for search.

Determinism: problem `i` of generator seed `s` comes from `random.Random(f"agentprm-math/{s}/{i}")`
alone (no global state, no hash order), so the same id is the same problem in every process.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

NAMES = [
    ("Mia", "she"),
    ("Tom", "he"),
    ("Ana", "she"),
    ("Ben", "he"),
    ("Lily", "she"),
    ("Sam", "he"),
    ("Zoe", "she"),
    ("Max", "he"),
    ("Eva", "she"),
    ("Leo", "he"),
    ("Ivy", "she"),
    ("Noah", "he"),
]
ITEMS = ["apples", "marbles", "stickers", "cards", "books", "pencils", "shells", "cookies", "stamps", "eggs"]
GOODS = [
    ("notebook", "notebooks"),
    ("pen", "pens"),
    ("cup", "cups"),
    ("ball", "balls"),
    ("kite", "kites"),
    ("hat", "hats"),
    ("sock", "socks"),
    ("plate", "plates"),
]
CONTAINERS = ["boxes", "bags", "jars", "packs"]
MAX_VALUE = 100
MIN_LINES, MAX_LINES = 2, 6


@dataclass(frozen=True)
class Problem:
    question: str
    lines: tuple[str, ...]  # the solution's calculation lines, without the answer line
    answer: int
    # What makes two problems the same for the split check: kind, operations and numbers, without the
    # names and items (a test problem with other names is still the same arithmetic).
    key: str

    @property
    def solution(self) -> tuple[str, ...]:
        """The expert's steps: the calculation lines, then `#### N`."""
        return (*self.lines, f"#### {self.answer}")


class _Retry(Exception):
    """The draw left the allowed number range; draw again from the same RNG."""


def _check(v: int) -> int:
    if not 1 <= v <= MAX_VALUE:
        raise _Retry
    return v


def _chain(rng: random.Random, n_lines: int, ops: list[str]) -> tuple[str, list[str], int]:
    (name, he), item = rng.choice(NAMES), rng.choice(ITEMS)
    He = he.capitalize()
    sents: list[str] = []
    lines: list[str] = []
    budget = n_lines
    if budget >= 3 and rng.random() < 0.4:  # start from equal containers: one line a * b
        a, b, box = rng.randint(2, 6), rng.randint(2, 10), rng.choice(CONTAINERS)
        v = _check(a * b)
        sents.append(f"{name} has {a} {box} of {item} with {b} {item} in each.")
        lines.append(f"{name} has {a} * {b} = {v} {item}.")
        ops.append(f"box{a}*{b}")
        budget -= 1
    else:
        v = rng.randint(2, 20)
        sents.append(f"{name} has {v} {item}.")
        ops.append(f"start{v}")
    friend = budget >= 3 and rng.random() < 0.35  # end: a friend's count relative to the final one (2 lines)
    steps = budget - (2 if friend else 0)
    for _ in range(steps):
        op = rng.choice(["add", "add", "sub", "sub", "mul", "div"])
        if op == "add":
            x = rng.randint(2, 10)
            sents.append(
                rng.choice(
                    [f"{He} buys {x} more.", f"{He} finds {x} more {item}.", f"A friend gives {name} {x} {item}."]
                )
            )
            r = _check(v + x)
            lines.append(f"Now {name} has {v} + {x} = {r} {item}.")
        elif op == "sub":
            if v < 3:
                raise _Retry
            x = rng.randint(2, min(10, v - 1))
            sents.append(
                rng.choice([f"{He} gives away {x} {item}.", f"{He} loses {x} of them.", f"{He} uses {x} {item}."])
            )
            r = _check(v - x)
            lines.append(f"Now {name} has {v} - {x} = {r} {item}.")
        elif op == "mul":
            x = rng.randint(2, 3 if v > 20 else 4)
            word = {2: "doubles", 3: "triples"}.get(x)
            sents.append(
                f"{He} {word} the {item}."
                if word and rng.random() < 0.5
                else f"{He} ends up with {x} times as many {item}."
            )
            r = _check(v * x)
            lines.append(f"Now {name} has {v} * {x} = {r} {item}.")
        else:
            divisors = [d for d in range(2, 6) if v % d == 0 and v // d >= 1]
            if not divisors:
                raise _Retry
            x = rng.choice(divisors)
            sents.append(
                rng.choice(
                    [
                        f"{He} shares them equally among {x} friends and keeps one share.",
                        f"{He} splits them into {x} equal piles and keeps one pile.",
                    ]
                )
            )
            r = _check(v // x)
            lines.append(f"Now {name} has {v} / {x} = {r} {item}.")
        ops.append(f"{op}{x}")
        v = r
    if friend:
        (other, _), x = rng.choice([n for n in NAMES if n[0] != name]), rng.randint(2, 10)
        more = v <= x or rng.random() < 0.5
        if more:
            sents.append(f"{other} has {x} more {item} than {name} has now.")
            f = _check(v + x)
            lines.append(f"{other} has {v} + {x} = {f} {item}.")
        else:
            sents.append(f"{other} has {x} fewer {item} than {name} has now.")
            f = _check(v - x)
            lines.append(f"{other} has {v} - {x} = {f} {item}.")
        total = _check(v + f)
        lines.append(f"Together they have {v} + {f} = {total} {item}.")
        ops.append(f"friend{'+' if more else '-'}{x}")
        return " ".join(sents) + f" How many {item} do {name} and {other} have together?", lines, total
    return " ".join(sents) + f" How many {item} does {name} have now?", lines, v


def _money(rng: random.Random, n_lines: int, ops: list[str]) -> tuple[str, list[str], int]:
    # lines: one product per priced kind, one sum when there is more than one cost, one change line
    kinds = {2: 1, 3: 1, 4: 2, 5: 3, 6: 4}[n_lines]
    # one more item at a fixed price: a cost without its own line (with one kind it adds the sum line)
    single = n_lines == 3 or (n_lines >= 4 and rng.random() < 0.4)
    (name, he) = rng.choice(NAMES)
    goods = rng.sample(GOODS, kinds + (1 if single else 0))
    buys, lines, costs = [], [], []
    for _one, many in goods[:kinds]:
        a, p = rng.randint(2, 5), rng.randint(2, 9 if kinds <= 2 else 5)
        buys.append(f"{a} {many} for ${p} each")
        c = a * p
        lines.append(f"The {many} cost {a} * {p} = ${c}.")
        costs.append(c)
        ops.append(f"buy{a}*{p}")
    if single:
        q = rng.randint(2, 10)
        buys.append(f"a {goods[-1][0]} for ${q}")
        costs.append(q)
        ops.append(f"one{q}")
    total = _check(sum(costs))
    if len(costs) > 1:
        lines.append(f"{name} spends {' + '.join(map(str, costs))} = ${total}.")
    bill = next(b for b in (10, 20, 50, 100, 200, 500) if b > total)
    lines.append(f"The change is {bill} - {total} = ${bill - total}.")
    ops.append(f"bill{bill}")
    what = ", ".join(buys[:-1]) + " and " + buys[-1] if len(buys) > 1 else buys[0]
    question = f"{name} buys {what}. {he.capitalize()} pays with a ${bill} bill. How much change does {he} get?"
    return question, lines, bill - total


def _pair(rng: random.Random, n_lines: int, ops: list[str]) -> tuple[str, list[str], int]:
    # people after the first: one line each; then one total line (n_lines 2-3); more lines: a chain
    people = rng.sample(NAMES, 3 if n_lines >= 3 else 2)
    item = rng.choice(ITEMS)
    v = rng.randint(2, 20)
    sents = [f"{people[0][0]} has {v} {item}."]
    ops.append(f"start{v}")
    counts, lines = [v], []
    for (who, _), (prev, _) in zip(people[1:], people):
        rel = rng.choice(["more", "fewer", "times"])
        last = counts[-1]
        if rel == "times" and last <= 25:
            x = rng.randint(2, 4)
            r = _check(last * x)
            sents.append(f"{who} has {x} times as many {item} as {prev}.")
            lines.append(f"{who} has {last} * {x} = {r} {item}.")
        elif rel == "fewer" and last > 3:
            x = rng.randint(2, min(10, last - 1))
            r = _check(last - x)
            sents.append(f"{who} has {x} fewer {item} than {prev}.")
            lines.append(f"{who} has {last} - {x} = {r} {item}.")
        else:
            rel, x = "more", rng.randint(2, 10)
            r = _check(last + x)
            sents.append(f"{who} has {x} more {item} than {prev}.")
            lines.append(f"{who} has {last} + {x} = {r} {item}.")
        ops.append(f"{rel}{x}")
        counts.append(r)
    total = _check(sum(counts))
    lines.append(f"Together they have {' + '.join(map(str, counts))} = {total} {item}.")
    names = ", ".join(p[0] for p in people[:-1]) + " and " + people[-1][0]
    return " ".join(sents) + f" How many {item} do {names} have together?", lines, total


_KINDS = {"chain": _chain, "money": _money, "pair": _pair}
_PAIR_LINES = (2, 3)  # a pair problem has 2 or 3 lines; longer draws go to chain or money


def generate_problem(index: int, seed: int = 0) -> Problem:
    """Problem `index` of generator seed `seed` (deterministic; see the module doc)."""
    rng = random.Random(f"agentprm-math/{seed}/{index}")
    while True:
        n_lines = rng.randint(MIN_LINES, MAX_LINES)
        kinds = ["chain", "chain", "money"] + (["pair"] if n_lines in _PAIR_LINES else [])
        kind = rng.choice(kinds)
        ops: list[str] = []
        try:
            question, lines, answer = _KINDS[kind](rng, n_lines, ops)
        except _Retry:
            continue
        if len(lines) != n_lines:  # a kind that cannot fill the count draws again
            continue
        return Problem(question, tuple(lines), answer, f"{kind}|{'|'.join(ops)}")


# One calculation as the generator writes it: "a op b [op c ...] = r", with `$` allowed before r.
_CALC = re.compile(r"(\d+(?:\s*[-+*/]\s*\d+)+)\s*=\s*\$?(\d+)")


def check_line(line: str) -> bool:
    """Whether the calculation in `line` is arithmetically right (the generator's self-check; tests)."""
    m = _CALC.search(line)
    if m is None:
        return False
    left = m.group(1)
    tokens = re.findall(r"\d+|[-+*/]", left)
    value = int(tokens[0])
    for op, num in zip(tokens[1::2], tokens[2::2]):  # left to right: every line has one kind of op or +/-
        n = int(num)
        if op == "+":
            value += n
        elif op == "-":
            value -= n
        elif op == "*":
            value *= n
        elif value % n:
            return False
        else:
            value //= n
    return value == int(m.group(2))
