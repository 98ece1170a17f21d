"""The physical limit of a path: forward FLOPs per token of an HF decoder and the machine's matmul rate.

A decoder token costs about 2 FLOPs per weight it meets (every linear layer; embeddings are a lookup)
plus attention over its context: 2 * 2 * layers * (heads * head_dim) * context (scores and the weighted
sum). A generated token also pays the LM head (hidden x vocab); a scored token pays the value head
(hidden x 1, negligible). Benchmarks divide what they did by what the machine's matmul can do.
"""

from __future__ import annotations

import time
from typing import Any


def forward_flops_per_token(config: Any, context: float, *, lm_head: bool) -> float:
    """Forward FLOPs of one token with `context` tokens before it (a mean is fine)."""
    h = config.hidden_size
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    inter = getattr(config, "intermediate_size", 4 * h)
    per_layer = h * heads * head_dim + 2 * h * kv_heads * head_dim + heads * head_dim * h  # q, k, v, o
    per_layer += 3 * h * inter  # gated MLP (gate, up, down)
    flops = 2 * layers * per_layer + 4 * layers * heads * head_dim * context
    if lm_head:
        flops += 2 * h * config.vocab_size
    return float(flops)


def matmul_flops_per_s(n: int = 512, seconds: float = 0.5) -> float:
    """The machine's measured fp32 matmul rate (n x n x n, the current torch thread count)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def limit_line(
    label: str, config: Any, tokens: int, context: float, seconds: float, *, lm_head: bool, machine: float
) -> str:
    """One benchmark line: FLOPs per token, achieved FLOP/s, and its share of the measured matmul rate."""
    per = forward_flops_per_token(config, context, lm_head=lm_head)
    rate = per * tokens / seconds if seconds > 0 else 0.0
    return (
        f"{label}: {per / 1e6:.2f} MFLOP/token (mean context {context:.0f}), {tokens} tokens in {seconds:.2f} s "
        f"= {rate / 1e9:.3f} GFLOP/s, {rate / machine:.1%} of the measured matmul {machine / 1e9:.1f} GFLOP/s"
    )
