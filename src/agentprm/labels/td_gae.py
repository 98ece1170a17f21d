"""TD-GAE step targets (paper §3.3.2, Eq 12-14 and Algorithm 1), pure numpy.

Q_t = M(s_t, a_t) for t = 0..T are the PRM's own current predictions; r is the outcome reward.

**literal (default, the paper's Eq 12-14):**
    δ_t = r_t + γ·Q_t − Q_{t−1}             (r_t = 0 for t < T)
    δ_T = r − Q_{T−1}                       (done-masking at T, so that Q̂_T = r as the paper states)
    Â_t = Σ_k (γλ)^k δ_{t+k}
    Q̂_t = Â_t + Q_{t−1}                     (t < T);   Q̂_T = r
Q_{t−1} cancels out of Q̂_t, so t = 0 needs no V(s_0) (we use Q_{−1} = 0; it does not matter), and
    Q̂_t = γ(1−λ)·Σ_{k=0}^{T−t−1} (γλ)^k Q_{t+k} + (γλ)^{T−t}·r
(`td_gae_closed_form`; tests check both agree). Note that Q̂_t leans on Q_t itself (weight γ(1−λ)):
with λ = 0 the model only learns at T; with λ = γ = 1 every target is r (the PVM labels).

**next (option, paper.md §9 item 2):** the textbook SARSA(λ) return that bootstraps from the next
step: Q̂_T = r, Q̂_t = γ[(1−λ)·Q_{t+1} + λ·Q̂_{t+1}].

γ is not given in the paper (§9 item 1); Eq 7-8 need γ = 1, our default. λ = 0.95 (paper).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAPS = ("literal", "next")


def td_gae_targets(
    q: Sequence[float] | np.ndarray,
    r: float,
    *,
    gamma: float = 1.0,
    lam: float = 0.95,
    bootstrap: str = "literal",
) -> np.ndarray:
    """Targets Q̂_0..Q̂_T for one trajectory from its step predictions `q` (len T+1) and outcome `r`.

    `literal` runs the paper's recursion (δ, then GAE backwards, then Q̂ = Â + Q_{t−1}); `next` the
    next-step bootstrap. The last target is always r.
    """
    q = np.asarray(q, dtype=np.float64)
    n = len(q)
    if n == 0:
        return np.zeros(0)
    if bootstrap == "literal":
        q_prev = np.concatenate([[0.0], q[:-1]])  # Q_{t−1}; Q_{−1} cancels, any value works
        delta = gamma * q - q_prev
        delta[-1] = r - q_prev[-1]  # terminal: r_T + γ·0 (done) − Q_{T−1}
        adv = np.empty(n)
        running = 0.0
        for t in range(n - 1, -1, -1):
            running = delta[t] + gamma * lam * running
            adv[t] = running
        return adv + q_prev
    if bootstrap == "next":
        out = np.empty(n)
        out[-1] = r
        for t in range(n - 2, -1, -1):
            out[t] = gamma * ((1.0 - lam) * q[t + 1] + lam * out[t + 1])
        return out
    raise ValueError(f"unknown bootstrap {bootstrap!r}; choose one of {BOOTSTRAPS}")


def td_gae_closed_form(
    q: Sequence[float] | np.ndarray, r: float, *, gamma: float = 1.0, lam: float = 0.95
) -> np.ndarray:
    """The literal targets in closed form: Q̂_t = γ(1−λ)·Σ_{k<T−t} (γλ)^k Q_{t+k} + (γλ)^{T−t}·r."""
    q = np.asarray(q, dtype=np.float64)
    n = len(q)
    T = n - 1
    out = np.empty(n)
    for t in range(n):
        k = np.arange(T - t)
        out[t] = gamma * (1.0 - lam) * np.sum((gamma * lam) ** k * q[t:T]) + (gamma * lam) ** (T - t) * r
    return out


def td_gae_linear(
    n: int, *, gamma: float = 1.0, lam: float = 0.95, bootstrap: str = "literal"
) -> tuple[np.ndarray, np.ndarray]:
    """(W, c) with `td_gae_targets(q, r) == W @ q + c * r` for every q of length n.

    Both forms are linear in (q, r), so training can apply them to a tensor in one matmul (and keep the
    gradient through the targets when asked to). Built by running the recursion on unit inputs.
    """
    W = np.stack(
        [td_gae_targets(np.eye(n)[j], 0.0, gamma=gamma, lam=lam, bootstrap=bootstrap) for j in range(n)], axis=1
    )
    c = td_gae_targets(np.zeros(n), 1.0, gamma=gamma, lam=lam, bootstrap=bootstrap)
    return W, c
