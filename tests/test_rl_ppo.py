"""Turn-level PPO (rl/ppo.py): GAE and the losses on hand-computed cases, the token alignment, one real
iteration on a one-token bandit env with a tiny random model, error episodes, and exact resume."""

from __future__ import annotations

import math
import string

import numpy as np
import pytest
import torch

from agentprm.envs.base import StepResult
from agentprm.rl.ppo import PPOConfig, PPOTrainer, action_tensors, encode_episode, gae, kl_k3, ppo_policy_loss
from agentprm.testing.fakes import ScriptedRewardModel
from agentprm.trajectory import Step, Trajectory
from tests.prm_helpers import tiny_backbone_dir

GOOD = set(string.ascii_letters)  # ~40% of the random model's first-token mass


def test_gae_hand():
    # r = [0, 0, 1], V = [.5, .5, .5], γ = 1, λ = .5: δ = [0, 0, .5]; A = [.125, .25, .5]
    adv, ret = gae([0, 0, 1], [0.5, 0.5, 0.5], gamma=1.0, lam=0.5)
    assert np.allclose(adv, [0.125, 0.25, 0.5]) and np.allclose(ret, [0.625, 0.75, 1.0])
    # γ = .9, λ = 1, V = 0: A_t = discounted return; a bootstrap value adds γ^{T-t+1}·V_last
    adv, _ = gae([1, 0, 2], [0, 0, 0], gamma=0.9, lam=1.0, last_value=1.0)
    assert np.allclose(adv, [1 + 0.81 * 2 + 0.729, 0.9 * 2 + 0.81, 2 + 0.9])


def test_ppo_loss_hand():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))  # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([[1.0, 1.0, -2.0]])
    mask = torch.tensor([[True, True, True]])
    loss, frac = ppo_policy_loss(logp, old, adv, mask, clip=0.2)
    # token terms min(ρA, clip(ρ)A): 1.2 (clipped), 0.5, -2.2  -> loss = -(1.2 + 0.5 - 2.2)/3
    assert math.isclose(loss.item(), -(1.2 + 0.5 - 2.2) / 3, rel_tol=1e-6)
    assert math.isclose(frac.item(), 1 / 3, rel_tol=1e-6)
    loss_m, _ = ppo_policy_loss(logp, old, adv, torch.tensor([[True, False, False]]), clip=0.2)
    assert math.isclose(loss_m.item(), -1.2, rel_tol=1e-6)
    kl = kl_k3(torch.tensor([0.0, math.log(2.0)]), torch.tensor([0.0, 0.0]))
    assert torch.allclose(kl, torch.tensor([0.0, 0.5 - math.log(0.5) - 1.0]))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_backbone_dir(tmp_path_factory.mktemp("rl") / "policy", hidden=32, layers=1)


def _policy(path):
    from agentprm.policy.hf import HFPolicy

    return HFPolicy.load(path)


def test_action_tokens_are_the_assistant_turns(tiny_dir):
    pol = _policy(tiny_dir)
    traj = Trajectory(
        id="x",
        env="scripted",
        task_id="line_2",
        system_prompt="sys",
        first_observation="Type 2 words.",
        steps=[Step(0, "Type 2 words.", "Action: a", "a"), Step(1, "Good.", "Action: b", "b")],
    )
    item = encode_episode(pol.tokenizer, traj)
    item.advantages = np.array([1.0, -1.0])
    mask, adv = action_tensors([item], len(item.input_ids))
    ids = item.input_ids
    predicted = [ids[i + 1] for i in range(len(ids) - 1) if mask[0, i]]
    text = pol.tokenizer.decode(predicted)
    assert "Action: a" in text and "Action: b" in text and "Good" not in text and "sys" not in text
    # the advantage of turn t sits on exactly turn t's tokens
    s, e = item.turn_spans[0]
    assert adv[0, s - 1 : e - 1].eq(1.0).all() and adv[0, item.turn_spans[1][0] - 1].item() == -1.0
    # V(s_t) is read just before turn t's first token
    assert item.value_index == [s - 1, item.turn_spans[1][0] - 1]


class LetterEnv:
    """One-turn bandit: reward 1 when the answer starts with a letter. `fail` task ids raise (env errors)."""

    name = "letter"
    system_prompt = "Type a letter."
    max_rounds = 1

    def task_ids(self, split, n=None):
        return [f"letter_{i}" for i in range(12 if split == "train" else 4)]

    def reset(self, task_id):
        self.task = task_id
        return "Type 2 words. Next: ?"

    def step(self, action):
        if self.task in FAIL:
            raise RuntimeError("env crashed")
        return StepResult("Done!", float(action.strip()[:1] in GOOD), True)

    def clone(self):
        return self

    def parse_action(self, text):
        return text

    def is_success(self, reward, done):
        return reward >= 1.0

    def close(self):
        pass


FAIL: set[str] = set()


def _good_mass(pol) -> float:
    """Probability that the policy's first token (what the env judges) starts with a good letter."""
    conv = [
        {"role": "user", "content": LetterEnv.system_prompt},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": "Type 2 words. Next: ?"},
    ]
    ids = torch.tensor([pol.prompt_ids(conv)])
    with torch.no_grad():
        p = torch.softmax(pol.model(input_ids=ids).logits[0, -1].float(), -1)
    good = [i for i in range(p.shape[0]) if pol.tokenizer.decode([i], skip_special_tokens=True).strip()[:1] in GOOD]
    return float(p[good].sum())


def _cfg(**kw):
    base = dict(
        env="letter",
        iterations=1,
        tasks_per_iter=8,
        episodes_per_task=2,
        max_new_tokens=1,
        lr=3e-3,
        critic_lr=1e-3,
        ppo_epochs=4,
        minibatch_episodes=8,
        kl_coef=0.0,
        entropy_coef=0.0,
        eval_every=0,
        threads=1,
        critic_init="policy",
    )
    base.update(kw)
    return PPOConfig(**base)


def _trainer(tiny_dir, out, rm=None, **kw):
    from agentprm.rl.critic import build_critic

    pol = _policy(tiny_dir)
    return PPOTrainer(_cfg(**kw), pol, build_critic(tiny_dir, init="policy"), LetterEnv, out, rm)


def _episode_logps(tr, trajs) -> list[float]:
    """log π(action tokens of the episode) under the trainer's current policy."""
    from agentprm.rl.ppo import _pad, token_logprobs

    items = [encode_episode(tr.tokenizer, t) for t in trajs]
    ids, att = _pad(items, tr.pad_id)
    mask, _ = action_tensors(items, ids.shape[1], advantages=False)
    with torch.no_grad():
        lp, _ = token_logprobs(tr.model, ids, att, mask)
    return lp.sum(1).tolist()


def test_one_iteration_raises_the_good_actions_probability(tiny_dir, tmp_path):
    from agentprm.trajectory import read_trajectories

    tr = _trainer(tiny_dir, tmp_path / "run")
    before_mass = _good_mass(tr.policy)
    tr.model.load_state_dict(tr.ref.state_dict())
    [m] = tr.train()
    trajs = read_trajectories(tmp_path / "run" / "rollouts" / "it_0001.jsonl")
    good = [t for t in trajs if t.success]
    bad = [t for t in trajs if not t.success]
    assert m.used == 16 and good and bad, m  # a mixed batch: there is something to learn
    after = _episode_logps(tr, trajs)
    tr.model.load_state_dict(tr.ref.state_dict())  # back to the weights that sampled them
    before = _episode_logps(tr, trajs)
    gain = [a - b for a, b in zip(after, before)]
    good_gain = np.mean([g for g, t in zip(gain, trajs) if t.success])
    bad_gain = np.mean([g for g, t in zip(gain, trajs) if not t.success])
    assert good_gain > 0.05 and bad_gain < -0.05, (good_gain, bad_gain)
    # and the probability that the first token is a letter (what the env rewards) went up
    tr2 = _trainer(tiny_dir, tmp_path / "run2")
    tr2.train()
    assert _good_mass(tr2.policy) > before_mass
    assert len(tr2.policy.prefix_store) == 0  # the key/value store was cleared when the weights changed
    assert (tmp_path / "run" / "policy" / "config.json").is_file()
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 1


def test_error_episodes_are_excluded_and_counted(tiny_dir, tmp_path):
    FAIL.update({f"letter_{i}" for i in range(6)})
    try:
        # half the tasks crash the env; the reward model must see only the other half
        calls = {"n": 0}

        def fn(conv):
            calls["n"] += 1
            return 0.5

        tr = _trainer(
            tiny_dir, tmp_path / "run", rm=ScriptedRewardModel(fn), reward="prm", shaping="potential", tasks_per_iter=12
        )
        [m] = tr.train()
    finally:
        FAIL.clear()
    assert m.env_error == 12 and m.used == 12 and m.episodes == 24, m
    assert calls["n"] == 12  # only the usable episodes were scored


def test_resume_gives_identical_weights(tiny_dir, tmp_path):
    full = _trainer(tiny_dir, tmp_path / "full", iterations=2)
    full.train()
    part = _trainer(tiny_dir, tmp_path / "part", iterations=2)
    part.train(stop_after=1)
    again = _trainer(tiny_dir, tmp_path / "part", iterations=2)
    assert again.try_resume() == 1
    again.iteration = 0  # train() resumes by itself
    again.train()
    for (k, a), (_, b) in zip(full.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), k
    for (k, a), (_, b) in zip(full.critic.state_dict().items(), again.critic.state_dict().items()):
        assert torch.equal(a, b), k
    rows = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2


def test_a_reward_model_that_always_fails_stops_the_run(tiny_dir, tmp_path):
    def boom(conv):
        raise ConnectionError("server down")

    tr = _trainer(tiny_dir, tmp_path / "run", rm=ScriptedRewardModel(boom), reward="prm")
    with pytest.raises(RuntimeError, match="failed on all 16 episodes"):
        tr.train()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing was recorded as a reward of 0
