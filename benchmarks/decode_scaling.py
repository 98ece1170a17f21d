"""Cost of one decode step against the batch size: where batching stops paying.

A step costs about a + b*B: `a` is the per-call overhead (Python, HF module dispatch, ~15 kernels a
layer), `b` the per-row work (matmuls, attention over the row's context, sampling). Batching B rows
instead of running them apart saves (B-1)*a, so the gain of batched over one-at-a-time work is bounded
by (a + b*k) * B/k / (a + b*B) for a one-at-a-time unit of k rows (k = N*M for beam search). Tiny
default shape (h128, 4 layers, 4 heads, MLP 512, vocab 1300), random weights, 1 thread unless given.

    PYTHONPATH=src python benchmarks/decode_scaling.py [--context 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from agentprm.policy.fastgen import decode_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--context", type=int, default=300)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--batches", default="1,4,16,32,64")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--attn", default="sdpa", help="sdpa or eager")
    ap.add_argument("--cpu-time", action="store_true", help="time with the process's CPU time (a shared machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=1300,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
    )
    model = LlamaForCausalLM(cfg).eval()
    model.config._attn_implementation = args.attn
    clock = time.process_time if args.cpu_time else time.perf_counter
    rows = []
    for b in (int(x) for x in args.batches.split(",")):
        prompts = [[5 + (i + j) % 1000 for j in range(args.context)] for i in range(b)]
        seeds = list(range(b))
        decode_batch(model, prompts, max_new_tokens=2, stop_ids=[-1], temperature=1.0, seeds=seeds)
        t0 = clock()
        decode_batch(model, prompts, max_new_tokens=1, stop_ids=[-1], temperature=1.0, seeds=seeds)
        t_prefill = clock() - t0
        t0 = clock()
        decode_batch(model, prompts, max_new_tokens=args.steps + 1, stop_ids=[-1], temperature=1.0, seeds=seeds)
        step = (clock() - t0 - t_prefill) / args.steps
        rows.append((b, step))
        print(f"batch {b:>3}: {step * 1000:7.2f} ms a step, {step / b * 1000:6.3f} ms a row", flush=True)
    (b1, t1), (bn, tn) = rows[0], rows[-1]
    per_row = (tn - t1) / (bn - b1)
    print(f"fit: a = {(t1 - per_row * b1) * 1000:.2f} ms a call, b = {per_row * 1000:.3f} ms a row")
    print(f"ratio: one row at a time vs batch {bn}: {t1 * bn / tn:.1f}x")


if __name__ == "__main__":
    main()
