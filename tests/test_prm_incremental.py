"""Incremental PRM scoring: scoring from a stored state (keys/values of an earlier conversation) gives
the scores of scoring the whole conversation, while encoding only the new tokens; beam search with it
chooses what beam search with full re-scoring chooses."""

from __future__ import annotations

import pytest
import torch

from agentprm.conversation import trajectory_messages
from agentprm.policy import fastgen
from agentprm.policy.fastgen import common_prefix
from agentprm.prm.base import IncrementalRewardModel
from agentprm.prm.model import PRMMeta, PRMScorer, ValueHeadPRM, encode_for_scoring
from agentprm.search import BeamConfig, beam_search
from agentprm.testing.fakes import ScriptedEnv
from tests.prm_helpers import tiny_backbone_dir, tiny_tokenizer
from tests.search_fakes import KeyedPolicy, make_env

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory):
    tok = tiny_tokenizer()
    d = tiny_backbone_dir(tmp_path_factory.mktemp("backbone"), tok, hidden=32, layers=2)
    model = ValueHeadPRM.from_backbone(d)
    torch.manual_seed(3)
    torch.nn.init.normal_(model.head.weight, std=0.5)  # a non-zero head: scores differ per step
    out = tmp_path_factory.mktemp("prm")
    model.save(out, tok, PRMMeta())
    return out


def _root() -> list[dict]:
    env = ScriptedEnv()
    return [
        {"role": "user", "content": env.system_prompt},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": env.reset("line_4_0")},
    ]


def _act(word: str) -> dict:
    return {"role": "assistant", "content": f"Thought: I type {word}.\nAction: {word}"}


@pytest.mark.parametrize("attn,chunk", [("sdpa", 0), ("eager", 0), ("sdpa", 5)])
def test_scores_from_a_state_equal_full_scoring_over_rounds(prm_dir, attn, chunk, monkeypatch):
    if chunk:  # the prefill in query chunks of 5 slots, each over the rows that still need it
        monkeypatch.setattr(fastgen, "PREFILL_SCORES", 1)
        monkeypatch.setattr(fastgen, "PREFILL_MIN_CHUNK", chunk)
    scorer = PRMScorer.load(prm_dir)
    assert isinstance(scorer, IncrementalRewardModel)
    scorer.model.backbone.config._attn_implementation = attn
    # A small tree: every round, 3 candidates per kept node; the first 2 candidates of the round are kept.
    nodes = [(None, _root())]
    for rnd in range(4):
        items = [(state, [*conv, _act(w)]) for state, conv in nodes for w in "abz"[: 3 - rnd % 2]]
        # A candidate scored from a state it does not extend: another branch's (the common prefix is
        # shorter than the state), and one with a rewritten history (diverges inside the first turn).
        if rnd:
            items.append((nodes[-1][0], [*nodes[0][1], _act("q")]))
            bad = [dict(m) for m in nodes[0][1]]
            bad[2]["content"] += " (rewritten)"
            items.append((nodes[0][0], [*bad, _act("a")]))
        got = scorer.score_from(items)
        full = scorer.score([c for _, c in items])
        for (state, conv), (s, new_state), ref in zip(items, got, full, strict=True):
            assert len(s.scores) == len(ref.scores) == rnd + 1
            assert max(abs(a - b) for a, b in zip(s.scores, ref.scores)) < 1e-5, (rnd, s.scores, ref.scores)
            assert new_state.all_ids() == encode_for_scoring(scorer.tokenizer, conv).input_ids
            shared = 0 if state is None else common_prefix(state.all_ids(), new_state.all_ids())
            assert s.tokens == ref.tokens - shared  # encoded: exactly the tokens past the shared prefix
        if rnd:  # the true extensions encode the observation + candidate turn only (38 of 116..192 here)
            assert all(s.tokens == got[0][0].tokens < ref.tokens / 2 for (s, _), ref in zip(got[:4], full))
        # Next round: keep two candidates and extend each by an observation.
        nodes = [
            (st, [*c, {"role": "user", "content": f"Obs {rnd}: typed."}])
            for (_, c), (_, st) in list(zip(items, got))[:2]
        ]
    scorer.model.backbone.config._attn_implementation = "sdpa"


def test_extension_encodes_only_the_new_tokens(prm_dir):
    scorer = PRMScorer.load(prm_dir)
    conv = [*_root(), _act("a")]
    ((s0, st),) = scorer.score_from([(None, conv)])
    nxt = [*conv, {"role": "user", "content": "Good. Next: b"}, _act("b")]
    ((s1, st1),) = scorer.score_from([(st, nxt)])
    n_full = len(encode_for_scoring(scorer.tokenizer, nxt).input_ids)
    assert s1.tokens == n_full - st.length  # exactly the observation + the candidate turn
    assert st1.parent is st and st1.base == st.length and st1.kv.shape[3] == s1.tokens
    assert s1.scores[0] == s0.scores[0]  # the earlier step's score is carried, not recomputed


def test_beam_with_incremental_prm_chooses_what_full_rescoring_chooses(prm_dir):
    scorer = PRMScorer.load(prm_dir)
    tasks = ["line_2_0", "line_3_1", "line_4_2"]
    runs = {}
    for reuse in (True, False):
        cfg = BeamConfig(beam_width=2, expansions=2, temperature=1.0, seed=0, reuse_rm_state=reuse)
        runs[reuse] = beam_search(KeyedPolicy(0.5), scorer, make_env, tasks, cfg)
    for a, b in zip(runs[True], runs[False], strict=True):
        assert [s.output for s in a.trajectory.steps] == [s.output for s in b.trajectory.steps]
        assert max(abs(x - y) for x, y in zip(a.scores, b.scores)) < 1e-5
        assert a.compute.policy_generated_tokens == b.compute.policy_generated_tokens
    inc = sum(r.compute.prm_tokens for r in runs[True])
    full = sum(r.compute.prm_tokens for r in runs[False])
    assert inc < full / 2, (inc, full)


class _FailingPolicy:
    name = "failing"

    def generate(self, conversations, **kw):
        raise RuntimeError("model server down")


class _NoEmptyCalls:
    """A reward model that refuses an empty candidate list (as a `max()` over it would)."""

    name = "strict"

    def __init__(self):
        self.calls = 0

    def score(self, conversations):
        assert conversations, "scored an empty candidate list"
        self.calls += 1
        return []

    def score_candidates(self, conversation, actions):
        raise AssertionError("not used")


def test_beam_with_no_candidates_makes_no_reward_model_call():
    """Regression: when every node's generation fails, the round has no candidates; beam search must
    end those nodes as policy errors without asking the reward model to score an empty list."""
    rm = _NoEmptyCalls()
    res = beam_search(_FailingPolicy(), rm, make_env, ["line_2_0", "line_3_1"], BeamConfig(2, 2, seed=0))
    assert rm.calls == 0
    assert [r.trajectory.status for r in res] == ["policy_error", "policy_error"]
    assert all("model server down" in r.trajectory.meta["policy_error"] for r in res)


def test_empty_score_calls_return_nothing(prm_dir):
    scorer = PRMScorer.load(prm_dir)
    assert scorer.score([]) == [] and scorer.score_from([]) == []


def test_grouped_step_values_equal_one_padded_batch(prm_dir):
    """PRM training forwards a batch in length-sorted groups (less padding); the values, mask and
    gradients are those of the one padded forward."""
    from agentprm.prm.train import grouped_step_values
    from tests.prm_helpers import scripted_dataset

    model, tok, _ = ValueHeadPRM.load(prm_dir)
    encs = [encode_for_scoring(tok, trajectory_messages(t)) for t in scripted_dataset(6, seed=2)]
    assert len({len(e.input_ids) for e in encs}) > 2  # varied lengths: several groups
    q1, m1 = model.step_values(encs)
    g1 = torch.autograd.grad(q1[m1].sum(), model.head.weight)[0]
    q2, m2 = grouped_step_values(model, encs, 0, slack=1.0)
    g2 = torch.autograd.grad(q2[m2].sum(), model.head.weight)[0]
    assert torch.equal(m1, m2)
    assert torch.allclose(q1[m1], q2[m2], atol=1e-5) and torch.allclose(g1, g2, atol=1e-4)


def test_beam_encodes_a_parents_context_once_for_its_candidates(prm_dir):
    """Round 0 of beam 2x2 (root copies M: 4 samples of the root): the first prompt is encoded once,
    then each candidate's turn from it, not the whole prompt once per candidate."""
    scorer = PRMScorer.load(prm_dir)
    seen = []

    class Recording(KeyedPolicy):
        def generate(self, conversations, **kw):
            out = super().generate(conversations, **kw)
            seen.extend(zip(conversations, out))
            return out

    cfg = BeamConfig(beam_width=2, expansions=2, temperature=1.0, seed=0)
    (res,) = beam_search(Recording(0.5), scorer, lambda: ScriptedEnv(max_rounds=1), ["line_3_1"], cfg)
    ((context, gens),) = seen
    assert len(gens) == 4
    n_ctx = len(encode_for_scoring(scorer.tokenizer, context).input_ids)
    turns = [
        len(encode_for_scoring(scorer.tokenizer, [*context, {"role": "assistant", "content": g.text}]).input_ids)
        - n_ctx
        for g in gens
    ]
    assert res.compute.prm_tokens == n_ctx + sum(turns)
