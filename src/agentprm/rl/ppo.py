"""Turn-level PPO on the project's rollout engine, with outcome or reward-model rewards (paper §5.2, Fig 5).

One iteration:
1. samples `tasks_per_iter` training tasks (seeded by iteration) and `episodes_per_task` episodes of
   each with the current policy (`rollout.jobs.rollout_tasks`: batched, one seed per episode, written
   to `rollouts/it_NNNN.jsonl`);
2. drops episodes that ended in `env_error` / `policy_error` (or whose reward-model call failed): they
   are counted in the metrics and excluded from the update, never given reward 0;
3. per-turn rewards (`rl.rewards.turn_rewards`: outcome, or the reward model's step scores shaped as
   `shaping` says) and GAE over turns with the critic's V(s_t) (`rl.critic`);
4. `ppo_epochs` passes of minibatches: the clipped objective on the tokens of each assistant turn (the
   turn's advantage on all its tokens; which tokens belong to turn t comes from
   `conversation.tokenize_conversation`, the same source SFT and the PRM use), a KL penalty to the
   frozen SFT reference (k3 estimator, in the loss), an entropy bonus; the critic regresses the
   GAE returns with its own optimiser;
5. clears the policy's key/value prefix store (its cached keys/values belong to the old weights).

Checkpoints every `checkpoint_every` iterations (weights, both optimisers, RNG states, iteration) with an
atomic swap; a rerun with the same `out` resumes and reaches the same weights as an uninterrupted run
(tested). `metrics.jsonl` gets one line per iteration (the report's Figure 5 reads it); every
`eval_every` iterations the greedy policy is evaluated on `eval_tasks` test tasks, and once before the
first update (iteration 0: the SFT policy, where every curve starts).

Defaults (Appendix C is missing, paper.md §9.10; these are ours): γ = 1 and λ = 0.95 over turns (the
paper's TD-GAE settings), clip 0.2, KL 0.05, entropy 0.001, advantages whitened over the batch,
2 PPO epochs. A truncated episode (max rounds) is treated as terminal (V = 0 after it): the round limit
is part of the task, and the env's reward there is final.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentprm.conversation import tokenize_conversation, trajectory_messages
from agentprm.errors import UserError
from agentprm.rl.critic import CRITIC_INITS, value_positions
from agentprm.rl.rewards import DEFAULT_SHAPING, SHAPINGS, turn_rewards
from agentprm.trajectory import Trajectory, read_trajectories

REWARDS = ("outcome", "prm")
CKPT_DIR = "checkpoint"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "rl_config.json"
# Fields that may change between a run and its resume (they do not change what is computed).
_RESUMABLE = ("iterations", "checkpoint_every", "threads", "device", "eval_every", "rollout_batch")


@dataclass
class PPOConfig:
    """Turn-level PPO settings. The defaults are sized for the embedded tiny policy on CPU."""

    env: str = "babyai"
    reward: str = "outcome"  # outcome | prm (the reward model's step scores, shaped by `shaping`)
    shaping: str = DEFAULT_SHAPING  # with reward=prm: potential | dense | progress | min (rl/rewards.py)
    rm_coef: float = 1.0  # weight of the reward-model term
    phi0: float = 0.0  # Φ(s_0) / Q_{-1}
    min_temperature: float = 0.0  # min-form: 0 = hard min, > 0 = PURE's soft-min
    binary_outcome: bool = False  # 0/1 success instead of the env's raw reward as r
    label: str = ""  # the curve's name in the report (default: outcome, or the reward model's dir name)
    # sampling
    iterations: int = 20
    tasks_per_iter: int = 8
    episodes_per_task: int = 2
    train_tasks: int = 0  # the pool tasks are drawn from: the first N train tasks (0: all)
    temperature: float = 1.0
    max_new_tokens: int = 48
    max_rounds: int = 0  # 0: the env's own
    rollout_batch: int = 64
    # advantage estimation
    gamma: float = 1.0
    lam: float = 0.95
    normalize_advantages: bool = True
    # losses and optimisation
    clip: float = 0.2
    kl_coef: float = 0.05
    entropy_coef: float = 0.001
    ppo_epochs: int = 2
    minibatch_episodes: int = 8
    lr: float = 1e-4
    critic_lr: float = 1e-4
    grad_clip: float = 1.0
    critic_init: str = "auto"  # auto | prm | policy (rl/critic.py)
    # bookkeeping
    checkpoint_every: int = 1
    eval_every: int = 5  # greedy eval on the test split every N iterations (0: never)
    eval_tasks: int = 20
    seed: int = 0
    threads: int = 2
    device: str = "cpu"

    def validate(self) -> None:
        if self.reward not in REWARDS:
            raise UserError(f"unknown --reward {self.reward!r}; choose one of {', '.join(REWARDS)}")
        if self.shaping not in SHAPINGS:
            raise UserError(f"unknown --shaping {self.shaping!r}; choose one of {', '.join(SHAPINGS)}")
        if self.critic_init not in CRITIC_INITS:
            raise UserError(f"unknown --critic-init {self.critic_init!r}; choose one of {', '.join(CRITIC_INITS)}")
        for name in ("iterations", "tasks_per_iter", "episodes_per_task", "ppo_epochs", "minibatch_episodes"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1")
        if not 0 <= self.lam <= 1 or not 0 < self.gamma <= 1:
            raise UserError("need 0 < gamma <= 1 and 0 <= lam <= 1")

    @classmethod
    def load(cls, path: str | Path | None, **overrides: Any) -> PPOConfig:
        """Defaults <- a YAML file's `rl:` mapping (or the whole file) <- non-None overrides."""
        data: dict[str, Any] = {}
        if path is not None:
            import yaml

            p = Path(path)
            if not p.is_file():
                raise UserError(f"config {p} does not exist; give a YAML file (see configs/rl-babyai.yaml)")
            raw = yaml.safe_load(p.read_text()) or {}
            section = raw.get("rl", raw) if isinstance(raw, dict) else None
            if not isinstance(section, dict):
                raise UserError(f"config {p} must be a YAML mapping of PPOConfig fields")
            data = section
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown rl config keys {unknown}; known: {', '.join(sorted(known))}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**data)
        cfg.validate()
        return cfg


# -- pure pieces (tested on hand-computed cases) ----------------------------------------------------------


def gae(
    rewards: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    gamma: float = 1.0,
    lam: float = 0.95,
    last_value: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """GAE over the turns of one episode: (advantages, returns = advantages + values).

    δ_t = r_t + γ·V_{t+1} − V_t (V_{T+1} = `last_value`, 0 for a finished episode); Â_t = Σ_k (γλ)^k δ_{t+k}.
    """
    r = np.asarray(rewards, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if r.shape != v.shape:
        raise ValueError("one value per turn")
    nxt = np.append(v[1:], last_value)
    delta = r + gamma * nxt - v
    adv = np.empty_like(delta)
    running = 0.0
    for t in range(len(delta) - 1, -1, -1):
        running = delta[t] + gamma * lam * running
        adv[t] = running
    return adv, adv + v


def ppo_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate, mean over masked tokens: (loss, share of tokens clipped)."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv
    per_token = -torch.minimum(unclipped, clipped)
    m = mask.float()
    n = m.sum().clamp_min(1.0)
    frac = ((unclipped > clipped).float() * m).sum() / n
    return (per_token * m).sum() / n, frac


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(π‖π_ref) estimate exp(ref − logp) − (ref − logp) − 1 (Schulman's k3: ≥ 0, unbiased)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.float()
    return (x * m).sum() / m.sum().clamp_min(1.0)


# -- episodes as training items ------------------------------------------------------------------------------


@dataclass
class EpisodeItem:
    traj: Trajectory
    input_ids: list[int]
    turn_spans: list[tuple[int, int]]  # token span of agent turn t's content (+ end-of-turn token)
    value_index: list[int]  # where V(s_t) is read
    rewards: np.ndarray = field(default_factory=lambda: np.zeros(0))
    advantages: np.ndarray = field(default_factory=lambda: np.zeros(0))
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))


def encode_episode(tokenizer: Any, traj: Trajectory) -> EpisodeItem:
    tc = tokenize_conversation(tokenizer, trajectory_messages(traj))
    return EpisodeItem(traj, tc.input_ids, tc.assistant_spans[1:], value_positions(tc))


def _pad(items: Sequence[EpisodeItem], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(it.input_ids) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(items), width), dtype=torch.long)
    for i, it in enumerate(items):
        ids[i, : len(it.input_ids)] = torch.tensor(it.input_ids)
        att[i, : len(it.input_ids)] = 1
    return ids, att


def action_tensors(
    items: Sequence[EpisodeItem], width: int, advantages: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, width-1] mask of predicted positions that are action tokens, and each one's turn advantage.

    Position i predicts token i+1, so a turn spanning tokens [s, e) is predicted at positions s-1..e-2.
    """
    mask = torch.zeros((len(items), width - 1), dtype=torch.bool)
    adv = torch.zeros((len(items), width - 1))
    for i, it in enumerate(items):
        for t, (s, e) in enumerate(it.turn_spans):
            mask[i, s - 1 : e - 1] = True
            if advantages:
                adv[i, s - 1 : e - 1] = float(it.advantages[t])
    return mask, adv


def token_logprobs(
    model: Any, ids: torch.Tensor, att: torch.Tensor, mask: torch.Tensor, entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(token i+1 | ≤ i) at every position [B, L-1] (0 off `mask`), and the entropy there if asked.

    Log-softmax and entropy are taken only at the masked positions: the full [B, L, V] log-softmax of a
    pretrained vocabulary would dominate memory.
    """
    from agentprm.prm.model import causal_mask

    logits = model(input_ids=ids, attention_mask=causal_mask(att), use_cache=False).logits[:, :-1].float()
    sel = logits[mask]
    lsm = torch.log_softmax(sel, dim=-1)
    tgt = ids[:, 1:][mask]
    out = torch.zeros(mask.shape, device=logits.device)
    out[mask] = lsm.gather(1, tgt.unsqueeze(1)).squeeze(1)
    ent = None
    if entropy:
        ent = torch.zeros(mask.shape, device=logits.device)
        ent[mask] = -(lsm.exp() * lsm).sum(-1)
    return out, ent


def critic_values(critic: Any, items: Sequence[EpisodeItem], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """([B, S] V(s_t), [B, S] mask of real turns) in one forward pass."""
    from agentprm.prm.model import EncodedConversation

    return critic.step_values([EncodedConversation(it.input_ids, it.value_index) for it in items], pad_id)


# -- the trainer ---------------------------------------------------------------------------------------------


@dataclass
class IterationMetrics:
    iteration: int
    episodes: int  # sampled
    used: int  # in the update
    env_error: int
    policy_error: int
    rm_error: int
    success_rate: float  # of the used episodes
    mean_reward: float
    mean_turns: float
    policy_loss: float = float("nan")
    value_loss: float = float("nan")
    kl: float = float("nan")
    entropy: float = float("nan")
    clip_frac: float = float("nan")
    seconds: float = 0.0
    test_success: float | None = None
    test_reward: float | None = None
    test_tasks: int | None = None
    label: str = ""
    seed: int = 0


def _nan_to_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()}


class PPOTrainer:
    """PPO over `policy` (an `HFPolicy`: its `.model` is trained in place) with a frozen reference copy.

    `make_env` builds one env instance; `reward_model` is any `RewardModel` (a PRM dir's scorer, the PRM
    server's client, a scripted one in tests) and is needed when `cfg.reward == "prm"`.
    """

    def __init__(
        self,
        cfg: PPOConfig,
        policy: Any,
        critic: Any,
        make_env: Callable[[], Any],
        out: str | Path,
        reward_model: Any = None,
        *,
        sources: dict[str, Any] | None = None,
    ):
        import copy

        cfg.validate()
        if cfg.reward == "prm" and reward_model is None:
            raise UserError("--reward prm needs --rm DIR (a trained PRM or ORM dir)")
        self.cfg = cfg
        self.policy = policy
        self.model = policy.model
        self.tokenizer = policy.tokenizer
        self.critic = critic
        self.make_env = make_env
        self.rm = reward_model
        self.out = Path(out)
        self.sources = sources or {}
        self.device = torch.device(cfg.device)
        self.model.to(self.device)
        self.critic.to(self.device)
        self.ref = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.0)
        self.opt_critic = torch.optim.AdamW(self.critic.parameters(), lr=cfg.critic_lr, weight_decay=0.0)
        self.iteration = 0
        env = make_env()
        pool = env.task_ids("train")
        self.train_pool = pool[: cfg.train_tasks] if cfg.train_tasks else pool
        self.test_tasks = env.task_ids("test")[: cfg.eval_tasks]
        self.env_name = env.name
        env.close()
        if cfg.tasks_per_iter > len(self.train_pool):
            raise UserError(f"tasks_per_iter {cfg.tasks_per_iter} > {len(self.train_pool)} training tasks")
        label = cfg.label or ("outcome" if cfg.reward == "outcome" else getattr(reward_model, "name", "prm"))
        self.label = label

    # -- persistence -------------------------------------------------------------------------------------
    def _config_key(self) -> dict[str, Any]:
        d = asdict(self.cfg)
        for k in _RESUMABLE:
            d.pop(k)
        return d

    def save_checkpoint(self) -> None:
        ckpt = self.out / CKPT_DIR
        tmp = self.out / (CKPT_DIR + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save(
            {
                "policy": self.model.state_dict(),
                "critic": self.critic.state_dict(),
                "opt": self.opt.state_dict(),
                "opt_critic": self.opt_critic.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate(),
                "numpy_rng": np.random.get_state(),
            },
            tmp / "state.pt",
        )
        (tmp / "state.json").write_text(json.dumps({"iteration": self.iteration, "config": self._config_key()}))
        old = self.out / (CKPT_DIR + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if ckpt.exists():
            ckpt.rename(old)
        tmp.rename(ckpt)  # a kill mid-save leaves the previous checkpoint (or .old) intact
        shutil.rmtree(old, ignore_errors=True)

    def try_resume(self) -> int:
        """Load the checkpoint in `out` if there is one; returns the iteration it reached (0: fresh)."""
        ckpt = self.out / CKPT_DIR
        if not (ckpt / "state.json").is_file():
            old = self.out / (CKPT_DIR + ".old")
            if (old / "state.json").is_file():
                ckpt = old
            else:
                return 0
        meta = json.loads((ckpt / "state.json").read_text())
        if meta["config"] != self._config_key():
            raise UserError(f"{ckpt} was written with other settings; rerun with the same options or another --out")
        st = torch.load(ckpt / "state.pt", map_location=self.device, weights_only=False)
        self.model.load_state_dict(st["policy"])
        self.critic.load_state_dict(st["critic"])
        self.opt.load_state_dict(st["opt"])
        self.opt_critic.load_state_dict(st["opt_critic"])
        torch.set_rng_state(st["torch_rng"])
        random.setstate(st["python_rng"])
        np.random.set_state(st["numpy_rng"])
        self.iteration = int(meta["iteration"])
        self._weights_changed()
        # Anything logged or sampled after the checkpoint is redone.
        mfile = self.out / METRICS_FILE
        if mfile.is_file():
            rows = [json.loads(x) for x in mfile.read_text().splitlines() if x.strip()]
            kept = [r for r in rows if r["iteration"] <= self.iteration]
            mfile.write_text("".join(json.dumps(r) + "\n" for r in kept))
        for d in ("rollouts", "eval"):
            for f in (self.out / d).glob("it_*.jsonl") if (self.out / d).is_dir() else []:
                if int(f.stem[3:]) > self.iteration:
                    f.unlink()
        return self.iteration

    def _weights_changed(self) -> None:
        store = getattr(self.policy, "prefix_store", None)
        if store is not None:
            store.clear()  # cached keys/values were computed by the old weights

    # -- one iteration ---------------------------------------------------------------------------------
    def _iteration_tasks(self, it: int) -> list[str]:
        from agentprm.policy.base import row_seed

        return random.Random(row_seed(self.cfg.seed, it)).sample(self.train_pool, self.cfg.tasks_per_iter)

    def _rollouts(self, tasks: list[str], path: Path, n: int, temperature: float, seed: int) -> list[Trajectory]:
        from agentprm.rollout.engine import RolloutConfig
        from agentprm.rollout.jobs import rollout_tasks

        rc = RolloutConfig(
            temperature=temperature,
            max_new_tokens=self.cfg.max_new_tokens,
            max_rounds=self.cfg.max_rounds or None,
            batch_size=self.cfg.rollout_batch,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            rollout_tasks(self.policy, self.make_env, tasks, path, n_per_task=n, cfg=rc, seed=seed)
        return read_trajectories(path)

    def _score(self, trajs: list[Trajectory]) -> list[list[float] | None]:
        """The reward model's step scores per trajectory; None where scoring failed (counted as rm_error)."""
        convs = [trajectory_messages(t) for t in trajs]
        try:
            return [list(s.scores) for s in self.rm.score(convs)]
        except Exception:  # noqa: BLE001 - retried one by one so one bad conversation cannot sink the batch
            pass
        out: list[list[float] | None] = []
        for t, c in zip(trajs, convs):
            try:
                out.append(list(self.rm.score([c])[0].scores))
            except Exception as e:  # noqa: BLE001 - errors are data
                t.meta["rm_error"] = f"{type(e).__name__}: {e}"
                out.append(None)
        return out

    def _batches(self, n: int, epoch: int) -> list[list[int]]:
        from agentprm.policy.base import row_seed

        order = list(range(n))
        random.Random(row_seed(self.cfg.seed, 1_000_003 * (self.iteration + 1) + epoch)).shuffle(order)
        k = self.cfg.minibatch_episodes
        return [order[i : i + k] for i in range(0, n, k)]

    def run_iteration(self) -> IterationMetrics:
        from agentprm.policy.base import row_seed

        cfg = self.cfg
        t0 = time.perf_counter()
        it = self.iteration + 1
        self.model.eval()
        trajs = self._rollouts(
            self._iteration_tasks(it),
            self.out / "rollouts" / f"it_{it:04d}.jsonl",
            cfg.episodes_per_task,
            cfg.temperature,
            row_seed(cfg.seed, it),
        )
        n_env = sum(t.status == "env_error" for t in trajs)
        n_pol = sum(t.status == "policy_error" for t in trajs)
        ok = [t for t in trajs if t.status in ("done", "max_rounds") and t.steps]
        scores: list[list[float] | None] = [None] * len(ok)
        if cfg.reward == "prm" and ok:
            scores = self._score(ok)
        n_rm = sum(1 for t in ok if "rm_error" in t.meta)
        if ok and n_rm == len(ok):  # a down reward model would make every iteration a silent no-op: stop
            raise RuntimeError(
                f"the reward model failed on all {n_rm} episodes ({ok[0].meta['rm_error']}); "
                "fix it and rerun: the run resumes from its last checkpoint"
            )
        items: list[EpisodeItem] = []
        for t, q in zip(ok, scores):
            if cfg.reward == "prm" and q is None:
                continue
            item = encode_episode(self.tokenizer, t)
            r = float(t.success) if cfg.binary_outcome else float(t.reward)
            shaping = "outcome" if cfg.reward == "outcome" else cfg.shaping
            item.rewards = turn_rewards(
                shaping,
                r,
                q,
                n_turns=len(t.steps),
                gamma=cfg.gamma,
                done=t.status == "done",
                phi0=cfg.phi0,
                coef=cfg.rm_coef,
                temperature=cfg.min_temperature,
            )
            items.append(item)
        m = IterationMetrics(
            iteration=it,
            episodes=len(trajs),
            used=len(items),
            env_error=n_env,
            policy_error=n_pol,
            rm_error=n_rm,
            success_rate=float(np.mean([i.traj.success for i in items])) if items else float("nan"),
            mean_reward=float(np.mean([i.traj.reward for i in items])) if items else float("nan"),
            mean_turns=float(np.mean([len(i.traj.steps) for i in items])) if items else float("nan"),
            label=self.label,
            seed=cfg.seed,
        )
        if items:
            self._update(items, m)
        self.iteration = it
        self._weights_changed()
        if cfg.eval_every and (it % cfg.eval_every == 0 or it == cfg.iterations):
            self._evaluate(m)
        m.seconds = time.perf_counter() - t0
        return m

    def _evaluate(self, m: IterationMetrics) -> None:
        """Greedy episodes on the test tasks with the current weights, into `m`'s test fields."""
        self.model.eval()
        ev = self._rollouts(self.test_tasks, self.out / "eval" / f"it_{m.iteration:04d}.jsonl", 1, 0.0, 0)
        good = [t for t in ev if t.status in ("done", "max_rounds")]
        m.test_tasks = len(good)
        m.test_success = float(np.mean([t.success for t in good])) if good else None
        m.test_reward = float(np.mean([t.reward for t in good])) if good else None

    def _evaluate_start(self) -> IterationMetrics:
        """Iteration 0: the SFT policy's test score, so every curve starts from the same measured point."""
        t0 = time.perf_counter()
        nan = float("nan")
        m = IterationMetrics(0, 0, 0, 0, 0, 0, nan, nan, nan, label=self.label, seed=self.cfg.seed)
        self._evaluate(m)
        m.seconds = time.perf_counter() - t0
        return m

    def _old_stats(self, items: list[EpisodeItem]) -> None:
        """Behaviour log-probs, reference log-probs and values (no grad), then GAE per episode."""
        cfg = self.cfg
        with torch.no_grad():
            for lo in range(0, len(items), cfg.minibatch_episodes):
                chunk = items[lo : lo + cfg.minibatch_episodes]
                ids, att = _pad(chunk, self.pad_id)
                mask, _ = action_tensors(chunk, ids.shape[1], advantages=False)
                ids, att, mask = ids.to(self.device), att.to(self.device), mask.to(self.device)
                old, _ = token_logprobs(self.model, ids, att, mask)
                ref, _ = token_logprobs(self.ref, ids, att, mask)
                v, vmask = critic_values(self.critic, chunk, self.pad_id)
                for i, it in enumerate(chunk):
                    n = len(it.input_ids) - 1
                    it.old_logp = old[i, :n].cpu()  # type: ignore[attr-defined]
                    it.ref_logp = ref[i, :n].cpu()  # type: ignore[attr-defined]
                    it.values = v[i, : len(it.turn_spans)].float().cpu().numpy()  # type: ignore[attr-defined]
        for it in items:
            it.advantages, it.returns = gae(it.rewards, it.values, gamma=cfg.gamma, lam=cfg.lam)  # type: ignore[attr-defined]
        if cfg.normalize_advantages:
            allv = np.concatenate([it.advantages for it in items])
            mu, sd = allv.mean(), allv.std()
            for it in items:
                it.advantages = (it.advantages - mu) / (sd + 1e-8)

    def _per_position(self, chunk: list[EpisodeItem], name: str, width: int) -> torch.Tensor:
        out = torch.zeros((len(chunk), width - 1))
        for i, it in enumerate(chunk):
            x = getattr(it, name)
            out[i, : len(x)] = x
        return out.to(self.device)

    def _update(self, items: list[EpisodeItem], m: IterationMetrics) -> None:
        cfg = self.cfg
        self._old_stats(items)
        stats: dict[str, list[float]] = {"pl": [], "vl": [], "kl": [], "ent": [], "cf": []}
        for epoch in range(cfg.ppo_epochs):
            for idx in self._batches(len(items), epoch):
                chunk = [items[i] for i in idx]
                ids, att = _pad(chunk, self.pad_id)
                mask, adv = action_tensors(chunk, ids.shape[1])
                ids, att, mask, adv = (
                    ids.to(self.device),
                    att.to(self.device),
                    mask.to(self.device),
                    adv.to(self.device),
                )
                old = self._per_position(chunk, "old_logp", ids.shape[1])
                ref = self._per_position(chunk, "ref_logp", ids.shape[1])
                self.model.train()
                logp, ent = token_logprobs(self.model, ids, att, mask, entropy=cfg.entropy_coef > 0)
                pl, cf = ppo_policy_loss(logp, old, adv, mask, cfg.clip)
                kl = masked_mean(kl_k3(logp, ref), mask)
                entropy = masked_mean(ent, mask) if ent is not None else torch.zeros((), device=self.device)
                loss = pl + cfg.kl_coef * kl - cfg.entropy_coef * entropy
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.opt.step()
                # critic: ½(V − R)² over real turns
                self.critic.train()
                v, vmask = critic_values(self.critic, chunk, self.pad_id)
                ret = torch.zeros_like(v)
                for i, it in enumerate(chunk):
                    ret[i, : len(it.returns)] = torch.as_tensor(it.returns, dtype=v.dtype)
                vl = masked_mean(0.5 * (v - ret) ** 2, vmask)
                self.opt_critic.zero_grad(set_to_none=True)
                vl.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
                self.opt_critic.step()
                for k, x in zip(stats, (pl, vl, kl, entropy, cf)):
                    stats[k].append(float(x.detach()))
        self.model.eval()
        self.critic.eval()
        m.policy_loss, m.value_loss, m.kl, m.entropy, m.clip_frac = (float(np.mean(stats[k])) for k in stats)

    # -- the loop ------------------------------------------------------------------------------------------
    def train(
        self, on_iteration: Callable[[IterationMetrics, int], None] | None = None, stop_after: int | None = None
    ) -> list[IterationMetrics]:
        """Run (or resume) to `cfg.iterations`; `stop_after` ends after that many iterations of this call
        (with a checkpoint: used to test resume). Returns this call's metrics."""
        self.out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(self.cfg.threads)
        start = self.try_resume()
        if start == 0:
            torch.manual_seed(self.cfg.seed)
        (self.out / CONFIG_FILE).write_text(
            json.dumps(
                {
                    "config": asdict(self.cfg),
                    "label": self.label,
                    "env": self.env_name,
                    **self.sources,
                    "complete": start >= self.cfg.iterations,
                },
                indent=2,
            )
        )
        done: list[IterationMetrics] = []
        if start == 0 and self.cfg.eval_every:
            # A fresh run: nothing logged before it counts (a run killed before its first checkpoint).
            for f in (self.out / "eval").glob("it_*.jsonl") if (self.out / "eval").is_dir() else []:
                f.unlink()
            m0 = self._evaluate_start()
            (self.out / METRICS_FILE).write_text(json.dumps(_nan_to_none(asdict(m0))) + "\n")
            if on_iteration:
                on_iteration(m0, self.cfg.iterations)
        while self.iteration < self.cfg.iterations:
            m = self.run_iteration()
            with open(self.out / METRICS_FILE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(_nan_to_none(asdict(m))) + "\n")
            done.append(m)
            last = self.iteration >= self.cfg.iterations
            stop = stop_after is not None and len(done) >= stop_after
            if last or stop or self.iteration % self.cfg.checkpoint_every == 0:
                self.save_checkpoint()
            if on_iteration:
                on_iteration(m, self.cfg.iterations)
            if stop and not last:
                return done
        self.finish()
        return done

    def finish(self) -> None:
        """Save the trained policy (an HF dir `agentprm search` / `rl` load) and critic; mark complete."""
        pol = self.out / "policy"
        self.model.save_pretrained(str(pol))
        self.tokenizer.save_pretrained(str(pol))
        from agentprm.prm.model import PRMMeta

        self.critic.save(
            self.out / "critic", self.tokenizer, PRMMeta(objective="critic", init_from=self.cfg.critic_init)
        )
        info = json.loads((self.out / CONFIG_FILE).read_text())
        info["complete"] = True
        (self.out / CONFIG_FILE).write_text(json.dumps(info, indent=2))


def is_complete(out: str | Path) -> bool:
    p = Path(out) / CONFIG_FILE
    return p.is_file() and bool(json.loads(p.read_text()).get("complete"))


def run_rl(
    policy_dir: str | Path,
    out: str | Path,
    cfg: PPOConfig,
    rm: str | None = None,
    on_iteration: Callable[[IterationMetrics, int], None] | None = None,
) -> list[IterationMetrics]:
    """`agentprm rl`: load the SFT policy, the reward model (a PRM/ORM dir, `random`, or anything
    `search.loading.load_reward_model` takes) and the critic, then train (or resume) into `out`."""
    from agentprm.envs import get_spec
    from agentprm.policy.hf import HFPolicy, check_policy_dir
    from agentprm.rl.critic import build_critic
    from agentprm.search.loading import load_reward_model

    cfg.validate()
    check_policy_dir(policy_dir)
    spec = get_spec(cfg.env)
    if cfg.reward == "prm" and not rm:
        raise UserError("--reward prm needs --rm DIR (a trained PRM or ORM dir)")
    torch.set_num_threads(cfg.threads)
    reward_model = load_reward_model(rm) if cfg.reward == "prm" and rm else None
    policy = HFPolicy.load(policy_dir, device=cfg.device)
    prm_dir = rm if rm and Path(rm).is_dir() else None
    critic = build_critic(policy_dir, prm_dir, cfg.critic_init)
    emb = critic.backbone.get_input_embeddings().num_embeddings
    if emb < len(policy.tokenizer):
        raise UserError(
            f"the critic ({critic.init_from}) has {emb} token embeddings but the policy's tokenizer has "
            f"{len(policy.tokenizer)}: give a PRM trained from this policy, or --critic-init policy"
        )
    sources = {"policy": str(policy_dir), "rm": rm, "critic_init": critic.init_from}
    trainer = PPOTrainer(cfg, policy, critic, spec.make, out, reward_model, sources=sources)
    return trainer.train(on_iteration)
