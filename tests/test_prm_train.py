"""Losses on a hand-computed case, targets per objective, and a tiny model that learns (and resumes)."""

import json

import pytest
import torch

from agentprm.conversation import trajectory_messages
from agentprm.prm.losses import advantage_loss, agentprm_loss, q_loss
from agentprm.prm.model import EncodedConversation, PRMScorer
from agentprm.prm.train import PRMTrainConfig, TrainItem, batch_targets, compute_loss, is_trained, train_prm
from tests.prm_helpers import scripted_dataset, tiny_backbone_dir


def test_losses_hand_computed():
    q = torch.tensor([[0.2, 0.5, 0.9], [0.4, 0.0, 0.0]])
    tgt = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    # L_Q: ½·mean of (0.04, 0.25, 0.01, 0.36) over the 4 real steps
    assert q_loss(q, tgt, mask).item() == pytest.approx(0.5 * (0.04 + 0.25 + 0.01 + 0.36) / 4)
    # L_A over t ≥ 1 pairs, only in row 0: pred advs (0.3, 0.4), target advs (1.0, 0.0)
    la = 0.5 * ((0.3 - 1.0) ** 2 + (0.4 - 0.0) ** 2) / 2
    assert advantage_loss(q, tgt, mask).item() == pytest.approx(la)
    assert advantage_loss(q, tgt, mask, half=False).item() == pytest.approx(2 * la)  # Eq 9 without ½
    total, lq, la_ = agentprm_loss(q, tgt, mask, beta=2.0)
    assert total.item() == pytest.approx(lq.item() + 2.0 * la_.item())
    # per-trajectory reduction: mean of row means
    per = (0.5 * (0.04 + 0.25 + 0.01) / 3 + 0.5 * 0.36) / 2
    assert q_loss(q, tgt, mask, reduction="trajectory").item() == pytest.approx(per)


def _item(n, r, static=()):
    return TrainItem("x", EncodedConversation(list(range(10)), list(range(n))), r, list(static))


def test_batch_targets_per_objective():
    q = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    items = [_item(3, 1.0, [1.0, 1.0, 1.0]), _item(1, 0.0, [0.0])]
    tgt, tm = batch_targets(q, mask, items, PRMTrainConfig(objective="agentprm"))
    c = 0.05  # γ(1−λ)
    assert tgt[0].tolist() == pytest.approx([c * (0.1 + 0.95 * 0.2) + 0.95**2, c * 0.2 + 0.95, 1.0])
    assert tgt[1, 0].item() == 0.0 and tm.tolist() == mask.tolist()
    assert not tgt.requires_grad  # detached by default
    tgt2, _ = batch_targets(q, mask, items, PRMTrainConfig(objective="agentprm", detach_targets=False))
    assert tgt2.requires_grad
    orm_items = [_item(3, 1.0, [None, None, 1.0]), _item(1, 0.0, [0.0])]
    _, tm_orm = batch_targets(q, mask, orm_items, PRMTrainConfig(objective="orm"))
    assert tm_orm.tolist() == [[False, False, True], [True, False, False]]
    loss, lq, la = compute_loss(q, mask, items, PRMTrainConfig(objective="pvm"))
    assert loss.item() == pytest.approx(lq) and la > 0  # PVM optimises L_Q only, L_A is still reported


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tiny_backbone_dir(tmp_path_factory.mktemp("bb"))
    return d, scripted_dataset(24, seed=0, ps=(0.0, 1.0))


@pytest.mark.parametrize("objective", ["agentprm", "pvm", "orm"])
def test_tiny_model_loss_falls(setup, tmp_path, objective):
    init, trajs = setup
    cfg = PRMTrainConfig.preset("tiny", objective=objective, epochs=6, lr=3e-3, warmup_steps=0)
    losses = []
    res = train_prm(trajs, init, tmp_path / objective, cfg, on_step=lambda s, n, lq, la: losses.append(lq))
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.5 * first, (objective, losses)
    assert is_trained(tmp_path / objective) and res.steps == len(losses)
    scorer = PRMScorer.load(tmp_path / objective)
    succ = [t for t in trajs if t.success]
    fail = [t for t in trajs if not t.success]
    last_s = lambda ts: sum(s.scores[-1] for s in scorer.score([trajectory_messages(t) for t in ts])) / len(ts)  # noqa: E731
    assert last_s(succ) > last_s(fail)  # the last-step score separates the training outcomes


def test_mc_objective_uses_given_labels(setup, tmp_path):
    init, trajs = setup
    labels = {t.id: [1.0] * t.num_steps for t in trajs[:10]}
    cfg = PRMTrainConfig.preset("tiny", objective="mc", epochs=1)
    res = train_prm(trajs, init, tmp_path / "mc", cfg, mc_labels=labels)
    assert res.items == 10 and res.skipped["no_mc_label"] == 14


def test_resume_continues_where_it_stopped(setup, tmp_path):
    init, trajs = setup
    cfg = PRMTrainConfig.preset("tiny", epochs=2, batch_size=8, checkpoint_every=0)
    full = train_prm(trajs, init, tmp_path / "a", cfg)
    part = train_prm(trajs, init, tmp_path / "b", cfg, stop_after_steps=4)
    assert part.steps == 4 and not is_trained(tmp_path / "b")
    rest = train_prm(trajs, init, tmp_path / "b", cfg)
    assert rest.resumed_from_step == 4 and rest.steps == full.steps == 6
    a = PRMScorer.load(tmp_path / "a").score([trajectory_messages(trajs[0])])[0].scores
    b = PRMScorer.load(tmp_path / "b").score([trajectory_messages(trajs[0])])[0].scores
    assert a == pytest.approx(b, abs=1e-5)  # resuming reproduces the uninterrupted run
    log = [json.loads(line) for line in open(tmp_path / "b" / "train_log.jsonl")]
    assert [r["step"] for r in log] == list(range(1, 7))
    train_prm(trajs, init, tmp_path / "b2", cfg, stop_after_steps=1)
    with pytest.raises(ValueError, match="another config"):
        train_prm(trajs, init, tmp_path / "b2", PRMTrainConfig.preset("tiny", epochs=3))


def test_gradient_checkpointing_trains_the_same_prm_and_keeps_the_stage_key(setup, tmp_path):
    """Recompute changes memory, not values: the same weights (float rounding) and the same pipeline key."""
    from dataclasses import replace

    from agentprm.pipeline_config import PipelineConfig
    from agentprm.stage_keys import StageKeys

    init, trajs = setup
    cfg = PRMTrainConfig.preset("tiny", epochs=1, batch_size=8, checkpoint_every=0, bf16=False)
    train_prm(trajs, init, tmp_path / "plain", cfg)
    calls: list[bool] = []
    from transformers import PreTrainedModel

    name = "activation_checkpointing_enable"  # transformers >= 5 (agentprm.policy.sft.enable_recompute)
    if not hasattr(PreTrainedModel, name):
        name = "gradient_checkpointing_enable"
    real = getattr(PreTrainedModel, name)

    def spy(self, *a, **kw):
        calls.append(True)
        return real(self, *a, **kw)

    setattr(PreTrainedModel, name, spy)
    try:
        train_prm(trajs, init, tmp_path / "recompute", replace(cfg, gradient_checkpointing=True))
    finally:
        setattr(PreTrainedModel, name, real)
    assert calls == [True]  # recompute was really on in the second run
    msgs = [trajectory_messages(t) for t in trajs[:4]]
    a = [s.scores for s in PRMScorer.load(tmp_path / "plain").score(msgs)]
    b = [s.scores for s in PRMScorer.load(tmp_path / "recompute").score(msgs)]
    for x, y in zip(a, b, strict=True):
        assert x == pytest.approx(y, abs=1e-5)
    base = PipelineConfig()
    on = replace(base, prm=replace(base.prm, gradient_checkpointing=True))
    assert StageKeys(on).prm_key("agentprm") == StageKeys(base).prm_key("agentprm")


def test_a_resume_may_turn_on_recompute_but_not_change_what_is_trained(setup, tmp_path):
    from dataclasses import replace

    init, trajs = setup
    cfg = PRMTrainConfig.preset("tiny", epochs=2, batch_size=8, checkpoint_every=0)
    train_prm(trajs, init, tmp_path / "p", cfg, stop_after_steps=2)
    res = train_prm(trajs, init, tmp_path / "p", replace(cfg, gradient_checkpointing=True))  # e.g. after an OOM
    assert res.resumed_from_step == 2 and is_trained(tmp_path / "p")
    train_prm(trajs, init, tmp_path / "q", cfg, stop_after_steps=2)
    with pytest.raises(ValueError, match="another config"):
        train_prm(trajs, init, tmp_path / "q", replace(cfg, lr=1e-3))
