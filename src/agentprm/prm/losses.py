"""The AgentPRM losses (paper Eq 4, 9, 10 and Algorithm 1) on padded per-step tensors.

Shapes: `q`, `target` are [B, S] (B trajectories, S = the longest one's step count); `mask` [B, S] is
True where a step exists and has a target. Pure functions of their inputs.

- L_Q = mean_t ½(Q_t − Q̂_t)²                                   (Eq 4)
- L_A = mean_{t≥1} ½((Q_t − Q_{t−1}) − (Q̂_t − Q̂_{t−1}))²       (Eq 9 with Algorithm 1's ½)
- L   = L_Q + β·L_A,  β = 1                                     (Eq 10)

Ambiguities (paper.md §9 item 3), paper-literal defaults first:
- `half_advantage=True`: Algorithm 1 puts ½ on L_A; Eq 6/9 have none (False).
- L_A runs over t ≥ 1 only: the advantage of step 0 would need V(s_0), which the model has no
  prediction for (V(s_t) is identified with Q_{t−1}).
- `reduction="step"`: the expectation over (s_t, a_t) samples pools every step of the batch (Eq 4);
  "trajectory" averages within each trajectory first (Algorithm 1's per-τ E[·] read literally).
- Targets are detached by the caller (`train.py`, `detach_targets`), not here.
"""

from __future__ import annotations

import torch

from agentprm.prm.config import REDUCTIONS


def _reduce(sq: torch.Tensor, mask: torch.Tensor, reduction: str) -> torch.Tensor:
    m = mask.to(sq.dtype)
    if reduction == "step":
        return (sq * m).sum() / m.sum().clamp_min(1.0)
    if reduction == "trajectory":
        per = (sq * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
        has = (m.sum(dim=1) > 0).to(sq.dtype)
        return (per * has).sum() / has.sum().clamp_min(1.0)
    raise ValueError(f"unknown reduction {reduction!r}; choose one of {REDUCTIONS}")


def q_loss(q: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, reduction: str = "step") -> torch.Tensor:
    """L_Q = E[½(Q_t − Q̂_t)²] over the masked steps."""
    return _reduce(0.5 * (q - target) ** 2, mask, reduction)


def advantage_loss(
    q: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    *,
    half: bool = True,
    reduction: str = "step",
) -> torch.Tensor:
    """L_A = E_{t≥1}[½((Q_t − Q_{t−1}) − (Q̂_t − Q̂_{t−1}))²] over pairs of consecutive masked steps."""
    if q.shape[1] < 2:
        return q.sum() * 0.0
    pred_adv = q[:, 1:] - q[:, :-1]
    target_adv = target[:, 1:] - target[:, :-1]
    pair_mask = mask[:, 1:] & mask[:, :-1]
    sq = (pred_adv - target_adv) ** 2
    return _reduce(0.5 * sq if half else sq, pair_mask, reduction)


def agentprm_loss(
    q: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    *,
    beta: float = 1.0,
    half_advantage: bool = True,
    reduction: str = "step",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L, L_Q, L_A) with L = L_Q + β·L_A."""
    lq = q_loss(q, target, mask, reduction)
    la = advantage_loss(q, target, mask, half=half_advantage, reduction=reduction)
    return lq + beta * la, lq, la
