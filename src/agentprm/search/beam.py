"""Step-level beam search @N×M (the paper's Algorithm 2), batched across tasks and beams.

Each round, for every live node of every task: sample M actions (ONE batched policy call), score every
candidate (s_t, a) with the reward model before the env sees it (ONE batched `rm.score` call; the
candidate's score is the score of its last step, Concat[s_t, a] in the paper), keep the top N of each
task's pool, and step only the kept candidates, each on its own env (the parent's env is cloned for all
but one of its kept children). Ended candidates (done, round limit or env failure) stay in the pool
with their final score. When no kept node is live, the highest-scoring ended node is returned.

Choices for the paper's ambiguities (§9.8); the literal reading is the default:
- `root_copies="M"` (literal: C = [s_0]·M, so round 0 samples M·M actions from s_0); `"1"` samples M.
- `dedup=False` (literal: the priority queue keeps duplicates); `True` drops a candidate whose whole
  action history equals one already in the task's pool, so duplicates never crowd out distinct paths.
- `finished="compete"` (design.md: ended candidates keep a slot and compete with their final score);
  `"reserve"` moves them to a side pool, keeps N live nodes, and returns the best of the side pool.
- Ended nodes whose env or policy failed (`env_error`, `policy_error`) rank below every other ended node
  when choosing the result.
- `prm_call="score"`: one `rm.score` over all candidates of all tasks; `"candidates"`: one
  `rm.score_candidates` per node (lets an RM share the prefix across the node's M actions).
- `reuse_rm_state=True`: with an incremental reward model (`PRMScorer.score_from`), each node keeps
  the RM's keys/values of its conversation and its candidates are scored from them, so a round
  encodes only the new tokens (observation + candidate turn) instead of whole conversations (the
  scores are the same up to float rounding; `prm_tokens` counts what was encoded).

A round is the rollout engine's two halves with the choice in between: `generate_turn` (M samples per
node, each node seeded with its own turn seed) and `advance` (a kept candidate on its own env). Seeds:
the root of task u is seeded `episode_seed(seed, u, 0)`; the child from a node's k-th sample is seeded
`sub_seed(node seed, k)`, so every path samples from its own stream and no task's result depends on
the other tasks in the batch. The chosen trajectory's `seed` is its path's seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentprm.policy.base import Generation, Policy
from agentprm.prm.base import IncrementalRewardModel, RewardModel
from agentprm.rollout.engine import RolloutConfig, advance, fail_policy, fork, generate_turn, sub_seed
from agentprm.search.core import EnvFactory, Node, SearchResult, rank_key, root_node, task_seed
from agentprm.trajectory import Compute


@dataclass
class BeamConfig:
    beam_width: int = 4  # N: nodes kept per round
    expansions: int = 4  # M: actions sampled per node
    temperature: float = 0.7  # paper
    max_new_tokens: int = 128
    seed: int | None = 0
    root_copies: str = "M"  # "M" (paper: C = [s_0]·M) | "1"
    dedup: bool = False
    finished: str = "compete"  # "compete" | "reserve"
    prm_call: str = "score"  # "score" | "candidates"
    reuse_rm_state: bool = True  # score from each node's stored RM state when the RM supports it

    @property
    def budget(self) -> str:
        return f"{self.beam_width}x{self.expansions}"

    def __post_init__(self) -> None:
        if self.beam_width < 1 or self.expansions < 1:
            raise ValueError("beam width and expansions must be at least 1")
        if self.root_copies not in ("M", "1") or self.finished not in ("compete", "reserve"):
            raise ValueError("root_copies must be 'M' or '1'; finished must be 'compete' or 'reserve'")
        if self.prm_call not in ("score", "candidates"):
            raise ValueError("prm_call must be 'score' or 'candidates'")


@dataclass
class _Candidate:
    task: int
    parent: Node
    gen: Generation
    sample: int  # its index among the parent's samples: the child's seed derives from it
    score: float = 0.0
    rm_state: object = None


def _history_key(node: Node, output: str | None = None) -> tuple[str, ...]:
    outs = tuple(s.output for s in node.traj.steps)
    return outs if output is None else (*outs, output)


def _rank_key(node: Node) -> tuple[bool, float]:
    return rank_key(node.traj.status, node.score)


def _score(rm: RewardModel, cands: list[_Candidate], mode: str, spent: list[Compute], reuse: bool) -> None:
    if not cands:  # every node failed or was deduplicated: nothing to score (and no empty RM call)
        return
    if mode == "score" and reuse and isinstance(rm, IncrementalRewardModel):
        # Siblings share their parent's context (history + observation; at the root the whole first
        # prompt): encode it once per parent, in one call, and each candidate's turn from it. Without
        # this, round 0 of beam NxM encoded the first prompt M*M times per task.
        siblings: dict[int, list[_Candidate]] = {}
        for c in cands:
            siblings.setdefault(id(c.parent), []).append(c)
        shared = [g for g in siblings.values() if len(g) > 1]
        start = {id(c.parent): c.parent.rm_state for c in cands}
        ctx = rm.score_from([(g[0].parent.rm_state, g[0].parent.messages()) for g in shared])
        for g, (s, state) in zip(shared, ctx, strict=True):
            start[id(g[0].parent)] = state
            spent[g[0].task].prm_tokens += s.tokens
        pairs = rm.score_from([(start[id(c.parent)], c.parent.candidate_messages(c.gen.text)) for c in cands])
        for c, (s, state) in zip(cands, pairs, strict=True):
            c.score, c.rm_state = float(s.scores[-1]), state
            spent[c.task].prm_tokens += s.tokens
        return
    if mode == "score":
        scored = rm.score([c.parent.candidate_messages(c.gen.text) for c in cands])
        for c, s in zip(cands, scored, strict=True):
            c.score = float(s.scores[-1])
            spent[c.task].prm_tokens += s.tokens
        return
    by_parent: dict[int, list[_Candidate]] = {}
    for c in cands:
        by_parent.setdefault(id(c.parent), []).append(c)
    for group in by_parent.values():
        s = rm.score_candidates(group[0].parent.messages(), [c.gen.text for c in group])
        for c, v in zip(group, s.scores, strict=True):
            c.score = float(v)
        spent[group[0].task].prm_tokens += s.tokens


def beam_search(
    policy: Policy,
    rm: RewardModel,
    make_env: EnvFactory,
    task_ids: Sequence[str],
    config: BeamConfig | None = None,
) -> list[SearchResult]:
    cfg = config or BeamConfig()
    n_tasks = len(task_ids)
    spent = [Compute() for _ in range(n_tasks)]
    beams: list[list[Node]] = []
    reserve: list[list[Node]] = [[] for _ in range(n_tasks)]
    for t in task_ids:
        seed = task_seed(cfg.seed, t)
        root = root_node(make_env(), t, traj_id=f"{t}:beam", policy=policy.name, temperature=cfg.temperature, seed=seed)
        beams.append([root])
    rollout = RolloutConfig(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    rnd = 0
    while True:
        live = [(i, node) for i in range(n_tasks) for node in beams[i] if not node.finished]
        if not live:
            break
        n = cfg.expansions * (cfg.expansions if rnd == 0 and cfg.root_copies == "M" else 1)
        gens = generate_turn(policy, [node for _, node in live], rollout, n=n)
        cands: list[_Candidate] = []
        for (i, node), g in zip(live, gens, strict=True):
            if isinstance(g, Exception):
                fail_policy(node, g)  # the node ends here, ranked below every other ended node
                if cfg.finished == "reserve":
                    reserve[i].append(node)
                continue
            # The prompt is processed once per node however many actions are sampled from it.
            spent[i].policy_prompt_tokens += g[0].prompt_tokens if g else 0
            spent[i].policy_generated_tokens += sum(x.generated_tokens for x in g)
            cands.extend(_Candidate(i, node, x, k) for k, x in enumerate(g))
        if cfg.dedup:
            seen: set[tuple[int, tuple[str, ...]]] = {
                (i, _history_key(n)) for i in range(n_tasks) for n in beams[i] if n.finished
            }
            unique = []
            for c in cands:
                key = (c.task, _history_key(c.parent, c.gen.text))
                if key not in seen:
                    seen.add(key)
                    unique.append(c)
            cands = unique
        _score(rm, cands, cfg.prm_call, spent, cfg.reuse_rm_state)

        new_beams: list[list[Node]] = [[] for _ in range(n_tasks)]
        for i in range(n_tasks):
            ended = [nd for nd in beams[i] if nd.finished] if cfg.finished == "compete" else []
            pool: list[Node | _Candidate] = [*ended, *(c for c in cands if c.task == i)]
            # Stable sort: ties keep pool order (ended nodes first, then candidates in sampling order).
            pool.sort(
                key=lambda x: (
                    x.score if isinstance(x, _Candidate) else (x.score if x.score is not None else float("-inf"))
                ),
                reverse=True,
            )
            kept = pool[: cfg.beam_width]
            new_beams[i] = [x for x in kept if isinstance(x, Node)]
            children: dict[int, list[_Candidate]] = {}
            for x in kept:
                if isinstance(x, _Candidate):
                    children.setdefault(id(x.parent), []).append(x)
            for group in children.values():
                parent = group[0].parent
                parent.rm_state = None  # not deep-copied into the children: each gets its candidate's
                for node, c in zip(
                    fork(parent, [sub_seed(parent.traj.seed, c.sample) for c in group]), group, strict=True
                ):
                    node.scores.append(c.score)
                    node.rm_state = c.rm_state
                    advance(node, c.gen, rollout)
                    spent[i].env_steps += 1
                    if node.finished:
                        node.rm_state = None  # never scored again: free its keys/values now
                    if node.finished and cfg.finished == "reserve":
                        reserve[i].append(node)
                    else:
                        new_beams[i].append(node)
        beams = new_beams
        rnd += 1

    results = []
    for i, t in enumerate(task_ids):
        ended = beams[i] if cfg.finished == "compete" else reserve[i] + beams[i]
        best = max(ended, key=_rank_key)  # max keeps the first of equal keys
        results.append(
            SearchResult(
                task_id=t,
                trajectory=best.traj,
                compute=spent[i],
                strategy="beam",
                budget=cfg.budget,
                rm=rm.name,
                score=best.score,
                scores=list(best.scores),
                details={"ended_candidates": len(ended)},
            )
        )
    return results
