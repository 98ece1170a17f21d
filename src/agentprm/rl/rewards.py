"""Per-turn rewards for RL from an episode's outcome and a reward model's step scores (pure numpy).

The paper's Appendix C (how AgentPRM's score becomes a PPO reward) is missing (paper.md §5, §9.10),
so every form below is an option. Notation: an episode has turns t = 0..T; `q[t]` = Q_t = M(s_t, a_t),
the reward model's score of turn t (read at the end of assistant turn t); `outcome` = r, the env's
final reward; `done` says the episode ended in a terminal state (not cut by max rounds or a budget).
Each function returns T+1 rewards, reward t given after action a_t.

- **outcome** (a): r at the last turn, 0 elsewhere. The sparse baseline of Figure 5.
- **potential** (b): r at the last turn plus F_t = γ·Φ(s_{t+1}) − Φ(s_t) with the PRM's value as the
  potential, Φ(s_{t+1}) = Q_t (the value after taking a_t) and Φ(s_0) = `phi0` (0: the PRM scores
  actions, not the empty history). Potential-based shaping leaves the optimal policy unchanged (Ng,
  Harada & Russell 1999) provided the potential of a terminal state is 0 (Grześ 2017, episodic tasks),
  so Φ(s_{T+1}) = 0 when `done`; a truncated episode keeps Φ(s_{T+1}) = Q_T. The shaped return
  telescopes: Σ_t γ^t r'_t = γ^T·r + γ^{T+1}·Φ(s_{T+1}) − Φ(s_0). With γ = 1, F_t = Q_t − Q_{t−1} is
  exactly the paper's TD error δ_t (Eq 12) that AgentPRM is trained to make consistent.
- **dense** (c): r'_t = Q_t (+ r at the last turn): the PRM's score as a per-step reward, as in
  PRM-rewarded PPO for math (Math-Shepherd, Wang et al. 2024). Unbounded return with T; prone to
  reward hacking by lengthening episodes with high-scoring steps (PURE, Cheng et al. 2025).
- **progress** (d): r'_t = Q_t − Q_{t−1} (Q_{−1} = `phi0`) (+ r at the last turn): the per-step gain
  in estimated value, "rewarding progress" (Setlur et al. 2024, arXiv 2410.08146). Equals potential
  shaping with γ = 1 except that the last step keeps its Q_T (no terminal zero), so Σ = Q_T + r.
- **min** (e): PURE's min-form credit assignment (Cheng et al. 2025, arXiv 2504.15275): the return of
  turn t is the worst future step score, G_t = min_{k≥t} Q_k, instead of a sum, so no step can be
  padded with high scores to inflate a return. Written as rewards r'_t = G_t − G_{t+1} (G_{T+1} = 0),
  whose undiscounted returns-to-go are exactly G_t (+ r). `temperature` > 0 gives PURE's soft-min
  (weights softmax(−Q/τ) over k ≥ t) instead of the hard min.

Default (`--reward prm`): **potential**. It is the only PRM form with a guarantee that a wrong PRM
cannot change which policy is optimal (the outcome still decides), it densifies credit where the
outcome alone is sparse (BabyAI's reward arrives once, at the end), and with γ = 1 its reward is the
quantity AgentPRM's L_A term trains (Q_t − Q_{t−1}). `--reward outcome` is the default of `agentprm rl`
itself: without a reward model there is nothing to shape with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SHAPINGS = ("outcome", "potential", "dense", "progress", "min")
DEFAULT_SHAPING = "potential"


def _q(q: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(q, dtype=np.float64)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError("need one score per turn (a non-empty 1-d sequence)")
    return a


def outcome_rewards(n_turns: int, outcome: float) -> np.ndarray:
    """(a) r at the last turn, 0 elsewhere."""
    if n_turns < 1:
        raise ValueError("an episode has at least one turn")
    out = np.zeros(n_turns)
    out[-1] = outcome
    return out


def potential_rewards(
    q: Sequence[float] | np.ndarray,
    outcome: float,
    *,
    gamma: float = 1.0,
    done: bool = True,
    phi0: float = 0.0,
    coef: float = 1.0,
) -> np.ndarray:
    """(b) outcome + coef·(γ·Φ(s_{t+1}) − Φ(s_t)), Φ(s_{t+1}) = Q_t, Φ(s_0) = phi0, Φ(terminal) = 0."""
    qa = _q(q)
    phi = np.concatenate([[phi0], qa])  # Φ(s_0), Φ(s_1) = Q_0, ..., Φ(s_{T+1}) = Q_T
    if done:
        phi[-1] = 0.0
    return outcome_rewards(len(qa), outcome) + coef * (gamma * phi[1:] - phi[:-1])


def shaping_telescope(
    q: Sequence[float] | np.ndarray, *, gamma: float = 1.0, done: bool = True, phi0: float = 0.0
) -> float:
    """What potential shaping adds to the discounted return: γ^{T+1}·Φ(s_{T+1}) − Φ(s_0)."""
    qa = _q(q)
    last = 0.0 if done else float(qa[-1])
    return gamma ** len(qa) * last - phi0


def dense_rewards(q: Sequence[float] | np.ndarray, outcome: float, *, coef: float = 1.0) -> np.ndarray:
    """(c) coef·Q_t at every turn, + r at the last."""
    qa = _q(q)
    return coef * qa + outcome_rewards(len(qa), outcome)


def progress_rewards(
    q: Sequence[float] | np.ndarray, outcome: float, *, phi0: float = 0.0, coef: float = 1.0
) -> np.ndarray:
    """(d) coef·(Q_t − Q_{t−1}) with Q_{−1} = phi0, + r at the last turn."""
    qa = _q(q)
    return coef * np.diff(np.concatenate([[phi0], qa])) + outcome_rewards(len(qa), outcome)


def min_form_returns(q: Sequence[float] | np.ndarray, temperature: float = 0.0) -> np.ndarray:
    """G_t = min_{k≥t} Q_k (or the soft-min Σ_k softmax(−Q/τ)_k·Q_k over k ≥ t when τ > 0)."""
    qa = _q(q)
    if temperature <= 0:
        return np.minimum.accumulate(qa[::-1])[::-1].copy()
    out = np.empty(len(qa))
    for t in range(len(qa)):
        tail = qa[t:]
        w = np.exp(-(tail - tail.min()) / temperature)  # shifted: same softmax, no overflow
        out[t] = float(np.sum(w * tail) / np.sum(w))
    return out


def min_form_rewards(
    q: Sequence[float] | np.ndarray, outcome: float, *, temperature: float = 0.0, coef: float = 1.0
) -> np.ndarray:
    """(e) rewards whose undiscounted returns-to-go are coef·G_t + r: r'_t = coef·(G_t − G_{t+1}), G_{T+1} = 0."""
    g = min_form_returns(q, temperature)
    return coef * (g - np.append(g[1:], 0.0)) + outcome_rewards(len(g), outcome)


def turn_rewards(
    shaping: str,
    outcome: float,
    q: Sequence[float] | np.ndarray | None = None,
    *,
    n_turns: int | None = None,
    gamma: float = 1.0,
    done: bool = True,
    phi0: float = 0.0,
    coef: float = 1.0,
    temperature: float = 0.0,
) -> np.ndarray:
    """Per-turn rewards of one episode under `shaping` (one of SHAPINGS); `q` is needed for all but outcome."""
    if shaping == "outcome":
        n = n_turns if n_turns is not None else len(_q(q))  # type: ignore[arg-type]
        return outcome_rewards(n, outcome)
    if shaping not in SHAPINGS:
        raise ValueError(f"unknown shaping {shaping!r}; choose one of {', '.join(SHAPINGS)}")
    if q is None:
        raise ValueError(f"shaping {shaping!r} needs the reward model's step scores")
    if n_turns is not None and len(q) != n_turns:
        raise ValueError(f"got {len(q)} step scores for {n_turns} turns")
    if shaping == "potential":
        return potential_rewards(q, outcome, gamma=gamma, done=done, phi0=phi0, coef=coef)
    if shaping == "dense":
        return dense_rewards(q, outcome, coef=coef)
    if shaping == "progress":
        return progress_rewards(q, outcome, phi0=phi0, coef=coef)
    return min_form_rewards(q, outcome, temperature=temperature, coef=coef)
