"""The math step task: the state is the question plus the steps so far, an action is the next step.

Conversation shape (docs/math.md). The env's system prompt is the first user turn, the assistant says
"OK.", the question is the next user turn; then every reasoning step is ONE assistant turn and the env
answers each non-final step with an empty user turn (`CONTINUE`), so generation resumes right after the
previous step with no feedback. `tokenize_conversation`, the SFT mask, the PRM's score position (the
last token of assistant turn t, `<|im_end|>` under ChatML), beam search's forks and rollouts' cache
reuse are all per assistant turn, so this shape reuses them unchanged: step t's score sits on the
end-of-turn token that closes step t, and step t's label (TD-GAE, MC, ...) is trained at that token.

The episode ends at the step that states a final answer (`#### N` or "The answer is N"; anything in
the turn after the marker is read, see `answer.py`) with reward 1 when N equals the reference
numerically, else 0; or after `max_rounds` steps without one (the rollout records `max_rounds`).

Data: the seeded generator (`problems.py`) by default; a GSM8K-format data dir (train.jsonl,
test.jsonl) given as `MathEnv(data=DIR)` or `AGENTPRM_MATH_DATA=DIR`. Task ids are `math_<i>`: the test
problems first (generator: `math_0`..`math_499`; GSM8K: its test rows), then the training ones.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from pathlib import Path

from agentprm.envs.base import StepResult, check_split
from agentprm.envs.math.answer import answers_match, final_answer, has_final_answer
from agentprm.envs.math.problems import MAX_LINES, generate_problem
from agentprm.errors import UserError
from agentprm.trajectory import Step, Trajectory

DATA_ENV_VAR = "AGENTPRM_MATH_DATA"
CONTINUE = ""  # the user turn between two steps: no feedback, generation resumes after the last step
GEN_SEED = 0  # the generator's seed: fixed, so math_<i> is the same problem everywhere
NUM_TEST = 500  # generated test problems (ids math_0 .. math_499)
NUM_TRAIN = 10000  # the generated train split's listed size (`agentprm envs`); more ids exist on request
# The step cap: the generator's longest solution (6 lines + the answer) plus slack for a policy's extra
# lines; GSM8K solutions run to ~10 lines.
MAX_ROUNDS_GENERATED = MAX_LINES + 4
MAX_ROUNDS_GSM8K = 16

SYSTEM_PROMPT = (
    "Solve the math word problem step by step. Write one step per reply: one short sentence with one "
    'calculation, e.g. "Now Mia has 12 + 5 = 17 apples." When you have the result, reply with the final '
    'answer alone as "#### N", where N is a number.'
)

_TASK_ID = re.compile(r"math_(\d+)")


def parse_task_id(task_id: str) -> int:
    m = _TASK_ID.fullmatch(task_id)
    if m is None:
        raise UserError(f"unknown task id {task_id!r}; math task ids are math_<i> with i >= 0 (e.g. math_12)")
    return int(m.group(1))


@functools.cache
def _test_keys(seed: int) -> frozenset[str]:
    return frozenset(generate_problem(i, seed).key for i in range(NUM_TEST))


class _TrainIndex:
    """Generated train indices: from NUM_TEST upward, skipping any problem whose arithmetic (kind,
    operations and numbers: `Problem.key`) is a test problem's, so the splits share no problem."""

    def __init__(self, seed: int):
        self.seed, self.next = seed, NUM_TEST
        self.ids: list[int] = []

    def first(self, n: int) -> list[int]:
        keys = _test_keys(self.seed)
        while len(self.ids) < n:
            if generate_problem(self.next, self.seed).key not in keys:
                self.ids.append(self.next)
            self.next += 1
        return self.ids[:n]


@functools.cache
def _train_index(seed: int) -> _TrainIndex:
    return _TrainIndex(seed)


@functools.cache
def _gsm8k(data: str):
    from agentprm.envs.math.gsm8k import load_splits

    return load_splits(data)


class MathEnv:
    name = "math"
    system_prompt = SYSTEM_PROMPT

    def __init__(self, data: str | Path | None = None, seed: int = GEN_SEED):
        data = data or os.environ.get(DATA_ENV_VAR) or None
        self.data = str(Path(data).expanduser().resolve()) if data else None
        self.seed = seed
        self.source = "gsm8k" if self.data else "generated"
        if self.data:
            _gsm8k(self.data)  # a bad data dir fails here, before any episode
        self.max_rounds = MAX_ROUNDS_GSM8K if self.data else MAX_ROUNDS_GENERATED
        self.task_id: str | None = None
        self.question: str | None = None
        self.solution: tuple[str, ...] = ()  # the reference steps (the expert's), ending `#### N`
        self.reference: str = ""

    # -- tasks --------------------------------------------------------------------------------------------
    def task_ids(self, split: str, n: int | None = None) -> list[str]:
        """The split's ids: GSM8K's rows, or generated problems (n beyond NUM_TRAIN gives more train ids)."""
        check_split(split)
        if self.data:
            splits = _gsm8k(self.data)
            offset = 0 if split == "test" else len(splits["test"])
            size = len(splits[split])
            return [f"math_{offset + i}" for i in range(size if n is None else min(n, size))]
        if split == "test":
            return [f"math_{i}" for i in range(NUM_TEST if n is None else min(n, NUM_TEST))]
        return [f"math_{i}" for i in _train_index(self.seed).first(NUM_TRAIN if n is None else n)]

    def problem(self, task_id: str) -> tuple[str, tuple[str, ...], str, dict]:
        """(question, reference steps, reference answer, meta) of a task id."""
        i = parse_task_id(task_id)
        if self.data:
            splits = _gsm8k(self.data)
            rows = splits["test"] + splits["train"]
            if i >= len(rows):
                raise UserError(
                    f"unknown task id {task_id!r}; {self.data} has {len(rows)} problems (math_0..math_{len(rows) - 1})"
                )
            item = rows[i]
            split = "test" if i < len(splits["test"]) else "train"
            return item.question, item.solution, item.answer, {"source": "gsm8k", "split": split}
        p = generate_problem(i, self.seed)
        kind = p.key.split("|", 1)[0]
        return (
            p.question,
            p.solution,
            str(p.answer),
            {"source": "generated", "kind": kind, "group": f"{len(p.lines)} steps"},
        )

    def reset(self, task_id: str) -> str:
        self.question, self.solution, self.reference, _ = self.problem(task_id)
        self.task_id = task_id
        return self.question

    # -- acting -------------------------------------------------------------------------------------------
    def step(self, action: str) -> StepResult:
        if self.question is None:
            raise RuntimeError("MathEnv.step before reset")
        if not has_final_answer(action):
            return StepResult(CONTINUE, 0.0, False, {})
        predicted = final_answer(action)
        correct = answers_match(predicted, self.reference)
        said = "no number" if predicted is None else str(predicted)
        # The last observation is recorded, never shown to the policy (the episode is over).
        verdict = (
            f"Final answer: {said}. {'Correct' if correct else 'Wrong'}; the reference answer is {self.reference}."
        )
        info = {"answer": None if predicted is None else str(predicted), "correct": correct}
        return StepResult(verdict, 1.0 if correct else 0.0, True, info)

    # -- protocol helpers ---------------------------------------------------------------------------------
    def clone(self) -> MathEnv:
        twin = MathEnv.__new__(MathEnv)
        twin.__dict__.update(self.__dict__)  # every field is immutable (str, tuple, int)
        return twin

    def parse_action(self, text: str) -> str:
        """The whole turn, stripped: one assistant turn is one step (the expert's are one line each)."""
        return text.strip()

    def is_success(self, reward: float, done: bool) -> bool:
        return reward >= 1.0

    def close(self) -> None:
        pass


def expert_trajectory(env: MathEnv, task_id: str, seed: int = 0) -> Trajectory:
    """The reference solution played step by step (generated: the generator's lines; GSM8K: the dataset's
    worked solution without calculator annotations). `seed` only names the episode: the solution is fixed."""
    first = env.reset(task_id)
    _, _, _, meta = env.problem(task_id)
    traj = Trajectory.begin(
        env, task_id, first, id=f"{task_id}-expert-{seed}-{uuid.uuid4().hex[:8]}", policy="expert", seed=seed, meta=meta
    )
    observation = first
    for line in env.solution:
        if traj.num_steps >= env.max_rounds:
            break
        action = env.parse_action(line)
        res = env.step(action)
        traj.steps.append(
            Step(
                t=traj.num_steps,
                observation=observation,
                output=line,
                action=action,
                reward=res.reward,
                done=res.done,
                info=res.info,
            )
        )
        traj.compute.env_steps += 1
        observation = res.observation
        if res.done:
            break
    last = traj.steps[-1] if traj.steps else None
    traj.final_observation = observation
    traj.reward = last.reward if last else 0.0
    traj.success = bool(last and env.is_success(last.reward, last.done))
    traj.status = "done" if last and last.done else "max_rounds"
    if not traj.success:
        traj.meta["failure"] = "the reference solution's answer line did not match (or the step cap cut it)"
    return traj
