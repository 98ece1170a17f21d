"""Beam search's PRM cost: incremental scoring (each node keeps its PRM keys/values; a round encodes
only each candidate's new tokens) against re-scoring every candidate's whole conversation.

Same tasks, same policy, same PRM, same beam settings; both runs choose the same trajectories (checked:
scores equal within 1e-5). The policy is the content-seeded `KeyedPolicy` of the search tests (no model:
the wall time is the PRM's and the search's own); the PRM is a random tiny Llama value head (h128, 4
layers, the tiny default's shape) built in code. Per round it prints the candidates, their new tokens
(observation + candidate turn), and the PRM tokens each mode encoded.

    PYTHONPATH=src python benchmarks/beam_prm_scoring.py [--tasks 16] [--beam 4x4] [--rounds 12]

Last line: `speed-up: N.Nx` (PRM wall time re-scoring / incremental).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.* fakes for the default setup

from agentprm.prm.model import PRMMeta, PRMScorer, ValueHeadPRM, encode_for_scoring  # noqa: E402
from agentprm.search import BeamConfig, beam_search  # noqa: E402
from agentprm.testing import ScriptedEnv  # noqa: E402


class Recording:
    """Wraps a PRMScorer: per call (= per beam round), candidates, new tokens, tokens encoded, seconds."""

    def __init__(self, scorer: PRMScorer):
        self.scorer, self.name, self.rounds = scorer, scorer.name, []

    def _new(self, convs) -> int:
        """New tokens: each conversation minus its parent node's (the last user + assistant turns)."""
        tok = self.scorer.tokenizer
        return sum(
            len(encode_for_scoring(tok, c).input_ids)
            - (len(encode_for_scoring(tok, c[:-2]).input_ids) if len(c) > 4 else 0)
            for c in convs
        )

    def score(self, convs):
        new = self._new(convs)
        t0 = time.perf_counter()
        res = self.scorer.score(convs)
        self.rounds.append((len(convs), new, sum(r.tokens for r in res), time.perf_counter() - t0))
        return res

    def score_candidates(self, conversation, actions):
        return self.scorer.score_candidates(conversation, actions)

    def score_from(self, items):
        new = self._new([c for _, c in items])
        t0 = time.perf_counter()
        res = self.scorer.score_from(items)
        self.rounds.append((len(items), new, sum(r.tokens for r, _ in res), time.perf_counter() - t0))
        return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--beam", default="4x4")
    ap.add_argument("--rounds", type=int, default=12, help="max rounds of an episode")
    ap.add_argument("--p-right", type=float, default=0.3, help="the fake policy's chance of the right word")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tests.prm_helpers import tiny_backbone_dir
    from tests.search_fakes import KeyedPolicy

    with tempfile.TemporaryDirectory() as tmp:
        tiny_backbone_dir(Path(tmp) / "bb", hidden=128, layers=4, max_positions=4096)
        model = ValueHeadPRM.from_backbone(Path(tmp) / "bb")
        torch.manual_seed(0)
        torch.nn.init.normal_(model.head.weight, std=0.1)
        from transformers import AutoTokenizer

        model.save(Path(tmp) / "prm", AutoTokenizer.from_pretrained(str(Path(tmp) / "bb")), PRMMeta())
        scorer = PRMScorer.load(Path(tmp) / "prm")

    def make_env():
        return ScriptedEnv(max_rounds=args.rounds, n_test=args.tasks)

    tasks = [f"line_9_{i}" for i in range(args.tasks)]  # 9 words: episodes run to the round limit mostly
    n, m = (int(x) for x in args.beam.split("x"))
    runs, rec = {}, {}
    for reuse in (True, False):
        cfg = BeamConfig(beam_width=n, expansions=m, temperature=1.0, seed=0, reuse_rm_state=reuse)
        beam_search(KeyedPolicy(args.p_right), scorer, make_env, tasks[:1], cfg)  # warm-up
        rec[reuse] = Recording(scorer)
        t0 = time.perf_counter()
        runs[reuse] = beam_search(KeyedPolicy(args.p_right), rec[reuse], make_env, tasks, cfg)
        runs[reuse, "sec"] = time.perf_counter() - t0
    same = all(
        [s.output for s in a.trajectory.steps] == [s.output for s in b.trajectory.steps]
        for a, b in zip(runs[True], runs[False])
    )
    diff = max(abs(x - y) for a, b in zip(runs[True], runs[False]) for x, y in zip(a.scores, b.scores))
    print(f"tasks {len(tasks)}, beam {args.beam}, up to {args.rounds} rounds, PRM h128 L4, {args.threads} thread(s)")
    print(f"{'round':>5}{'cands':>7}{'new tok':>9}{'incr tok':>10}{'full tok':>10}{'incr s':>8}{'full s':>8}")
    for r, (a, b) in enumerate(zip(rec[True].rounds, rec[False].rounds)):
        print(f"{r:>5}{a[0]:>7}{a[1]:>9}{a[2]:>10}{b[2]:>10}{a[3]:>8.3f}{b[3]:>8.3f}")
    t_inc, t_full = (sum(x[3] for x in rec[k].rounds) for k in (True, False))
    tok_inc, tok_full = (sum(x[2] for x in rec[k].rounds) for k in (True, False))
    print(f"PRM tokens: incremental {tok_inc}, re-scoring {tok_full} (x{tok_full / tok_inc:.1f})")
    print(
        f"PRM seconds: incremental {t_inc:.2f}, re-scoring {t_full:.2f}; whole search {runs[True, 'sec']:.2f} vs {runs[False, 'sec']:.2f} s"
    )
    print(f"same trajectories chosen: {same}; max |score difference|: {diff:.1e}")
    from agentprm.flops import limit_line, matmul_flops_per_s

    machine = matmul_flops_per_s()
    ctx = tok_full / max(1, sum(x[0] for x in rec[False].rounds))  # mean conversation length scored
    cfg_bb = scorer.model.backbone.config
    print(limit_line("incremental, scored tokens", cfg_bb, tok_inc, ctx, t_inc, lm_head=False, machine=machine))
    print(limit_line("re-scoring, scored tokens", cfg_bb, tok_full, ctx / 2, t_full, lm_head=False, machine=machine))
    print(f"speed-up: {t_full / t_inc:.1f}x")


if __name__ == "__main__":
    main()
