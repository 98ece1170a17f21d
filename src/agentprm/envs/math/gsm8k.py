"""GSM8K-format data: JSONL lines `{"question": ..., "answer": ...}`, the answer a worked solution whose
last line is `#### N` (openai/grade-school-math's `train.jsonl` / `test.jsonl`).

A solution becomes the expert's steps: one step per non-empty line, the calculator annotations
`<<48/2=24>>` removed (they are GSM8K's tool calls, not reasoning text), the `#### N` line last.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from agentprm.envs.math.answer import extract_answer, parse_number
from agentprm.errors import UserError

_CALCULATOR = re.compile(r"<<[^<>]*>>")
SPLIT_FILES = {"train": "train.jsonl", "test": "test.jsonl"}


@dataclass(frozen=True)
class Item:
    question: str
    solution: tuple[str, ...]  # the expert's steps; the last is `#### N`
    answer: str  # the reference as GSM8K writes it (e.g. "72"; compared numerically)


def parse_item(record: dict, where: str) -> Item:
    """One GSM8K record; a record without a question, an answer or a numeric `#### N` is a UserError."""
    question, answer = record.get("question"), record.get("answer")
    if not isinstance(question, str) or not isinstance(answer, str) or not question.strip():
        raise UserError(f'{where}: a GSM8K line needs string fields "question" and "answer"')
    lines = [_CALCULATOR.sub("", line).strip() for line in answer.splitlines()]
    lines = [line for line in lines if line]
    final = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("####")), None)
    ref = extract_answer(lines[final]) if final is not None else None
    if final is None or ref is None or parse_number(ref) is None:
        raise UserError(f"{where}: the answer must end with a line `#### N` (N a number)")
    steps = tuple(lines[:final]) + (f"#### {ref}",)
    return Item(question.strip(), steps, ref)


def load_jsonl(path: str | Path) -> list[Item]:
    """Every item of a GSM8K-format JSONL file (blank lines skipped); bad lines end in one UserError."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f'GSM8K file {p} does not exist; give a JSONL file of {{"question", "answer"}} lines')
    items = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{p}:{n}: not JSON ({e.msg}); each line must be one GSM8K record") from None
        if not isinstance(record, dict):
            raise UserError(f'{p}:{n}: each line must be a JSON object with "question" and "answer"')
        items.append(parse_item(record, f"{p}:{n}"))
    return items


def load_splits(data: str | Path) -> dict[str, list[Item]]:
    """The splits of a GSM8K data dir (`train.jsonl`, `test.jsonl`; one of them may be missing)."""
    d = Path(data)
    if not d.is_dir():
        raise UserError(f"math data {d} is not a directory; give the folder holding GSM8K's train.jsonl and test.jsonl")
    splits = {split: load_jsonl(d / name) if (d / name).is_file() else [] for split, name in SPLIT_FILES.items()}
    if not any(splits.values()):
        raise UserError(f"{d} holds neither train.jsonl nor test.jsonl (GSM8K's file names)")
    return splits
