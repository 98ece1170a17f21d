"""What every search strategy shares: the search tree `Node`, stepping a node with a generation, the
lock-step episode runner (greedy and best-of-n sampling), and `SearchResult`.

All strategies run many tasks at once in lock-step rounds: round r makes ONE batched policy call over
every live node of every task (and, for PRM-guided strategies, one batched reward-model call), so the
model sees large batches. The policy's seed for round r is `seed + r`, never a function of the batch
composition, so a policy whose sampling depends only on (seed, conversation) gives the same result
batched and task by task (the scripted test policies do; HF batched sampling is equal in distribution).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from agentprm.conversation import Message, step_messages
from agentprm.envs.base import Env
from agentprm.errors import EnvError
from agentprm.policy.base import Generation, Policy
from agentprm.trajectory import Compute, Step, Trajectory

EnvFactory = Callable[[], Env]


@dataclass
class Node:
    """A partial (or ended) trajectory with the env at its state; `scores` are the RM's per-step scores."""

    env: Env | None  # None once ended: a finished node never steps again
    traj: Trajectory
    pending_observation: str  # what the env said last: the next user turn
    scores: list[float] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.traj.status != "running"

    @property
    def score(self) -> float | None:
        """The node's score: the RM's score of its last step (the paper's trajectory score)."""
        return self.scores[-1] if self.scores else None

    def messages(self) -> list[Message]:
        """The conversation the next action is generated from (ends with the pending observation)."""
        steps = self.traj.steps
        return step_messages(
            self.traj.system_prompt,
            [s.observation for s in steps] + [self.pending_observation],
            [s.output for s in steps],
        )

    def candidate_messages(self, output: str) -> list[Message]:
        """(s_t, a): the conversation with `output` as the next assistant turn, before the env answers."""
        return [*self.messages(), {"role": "assistant", "content": output}]


def root_node(env: Env, task_id: str, *, traj_id: str, policy: str, temperature: float, seed: int | None) -> Node:
    """Reset `env` on `task_id`; an env failure gives an ended node with status `env_error` (data, not a crash)."""
    traj = Trajectory.begin(
        env,
        task_id,
        "",
        id=traj_id,
        policy=policy,
        temperature=temperature,
        seed=seed,
    )
    try:
        obs = env.reset(task_id)
    except EnvError as e:
        traj.status = "env_error"
        traj.meta["env_error"] = str(e)
        return Node(None, traj, "")
    traj.first_observation = obs
    return Node(env, traj, obs)


def fork(node: Node, k: int) -> list[Node]:
    """`k` independent copies of a live node: k-1 env clones, the last copy takes the node's own env."""
    assert node.env is not None and k >= 1
    envs = [node.env.clone() for _ in range(k - 1)] + [node.env]
    return [Node(e, copy.deepcopy(node.traj), node.pending_observation, list(node.scores)) for e in envs]


def advance(node: Node, gen: Generation) -> Node:
    """Send the action in `gen` to the node's env and record the step (mutates and returns `node`)."""
    env, traj = node.env, node.traj
    assert env is not None and not node.finished
    action = env.parse_action(gen.text)
    step = Step(
        t=len(traj.steps),
        observation=node.pending_observation,
        output=gen.text,
        action=action,
        prompt_tokens=gen.prompt_tokens,
        generated_tokens=gen.generated_tokens,
    )
    traj.steps.append(step)
    traj.compute += Compute(gen.prompt_tokens, gen.generated_tokens, 0, 1)
    try:
        res = env.step(action)
    except EnvError as e:
        step.env_error = str(e)
        traj.status = "env_error"
        node.env = None
        return node
    step.reward, step.done, step.info = res.reward, res.done, dict(res.info)
    node.pending_observation = res.observation
    traj.final_observation = res.observation
    traj.reward = res.reward  # AgentGym: the episode's reward is its last step's reward
    if res.done or len(traj.steps) >= env.max_rounds:
        traj.status = "done" if res.done else "max_rounds"
        traj.success = bool(env.is_success(res.reward, res.done))
        node.env = None
    return node


def round_seed(seed: int | None, round_index: int) -> int | None:
    return None if seed is None else seed + round_index


def run_episodes(
    policy: Policy,
    roots: Sequence[Node],
    *,
    n: int,
    temperature: float,
    max_new_tokens: int,
    seed: int | None,
) -> list[list[Node]]:
    """Run `n` episodes from each root to the end, all in lock-step; returns the n ended nodes per root.

    Round 0 asks for `n` samples of each root's first action in one call (the n episodes share s_0);
    later rounds ask one action per live episode, all episodes of all roots in one call.
    """
    groups: list[list[Node]] = [[] for _ in roots]
    live_roots = [i for i, r in enumerate(roots) if not r.finished]
    for i, r in enumerate(roots):
        if r.finished:
            groups[i] = [copy.deepcopy(r) for _ in range(n)]
    if live_roots:
        gens = policy.generate(
            [roots[i].messages() for i in live_roots],
            n=n,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=round_seed(seed, 0),
        )
        for i, g in zip(live_roots, gens, strict=True):
            children = fork(roots[i], n)
            groups[i] = [advance(c, gen) for c, gen in zip(children, g, strict=True)]
    rnd = 1
    while True:
        live = [node for group in groups for node in group if not node.finished]
        if not live:
            return groups
        gens = policy.generate(
            [node.messages() for node in live],
            n=1,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=round_seed(seed, rnd),
        )
        for node, g in zip(live, gens, strict=True):
            advance(node, g[0])
        rnd += 1


@dataclass
class SearchResult:
    """The trajectory a search chose for one task, and everything the search spent on that task."""

    task_id: str
    trajectory: Trajectory  # the chosen one; its own `compute` is what that one path cost
    compute: Compute  # the whole search on this task: every sampled candidate, every PRM call, every env step
    strategy: str  # "greedy" | "bon" | "beam"
    budget: str  # "1", "16", "4x4"
    rm: str | None = None  # the reward model's name; None for greedy
    score: float | None = None  # the RM's score of the chosen trajectory
    scores: list[float] = field(default_factory=list)  # the RM's per-step scores of the chosen trajectory
    details: dict[str, Any] = field(default_factory=dict)  # strategy-specific (BoN: every candidate)

    @property
    def success(self) -> bool:
        return self.trajectory.success

    def to_trajectory(self, config: dict[str, Any] | None = None, command: str | None = None) -> Trajectory:
        """The JSONL record: the chosen trajectory with `compute` = the whole search's cost and
        `meta["search"]` = strategy, budget, rm, score(s), config, command and the details."""
        traj = copy.deepcopy(self.trajectory)
        traj.meta["path_compute"] = asdict(traj.compute)
        traj.compute = copy.deepcopy(self.compute)
        traj.meta["search"] = {
            "strategy": self.strategy,
            "budget": self.budget,
            "rm": self.rm,
            "score": self.score,
            "scores": list(self.scores),
            "config": config or {},
            "command": command,
            **self.details,
        }
        return traj


def search_meta(traj: Trajectory) -> dict[str, Any]:
    """The `meta["search"]` block of a search-output trajectory ({} for other trajectories)."""
    return traj.meta.get("search", {})
