"""PRM training step throughput: one padded forward per batch against length-grouped forwards.

Same batches (random, as training draws them), same model, forward + backward of the AgentPRM loss
input (`step_values`); grouping changes only how the batch is padded. Trajectories are scripted with
2-20 steps, so lengths vary as TextCraft's do. Tiny value head h128 L4 built in code.

    PYTHONPATH=src python benchmarks/prm_train_throughput.py [--n 64] [--batch 8]

Last line: `speed-up: N.Nx` (real tokens/s grouped over one padded batch).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentprm.conversation import trajectory_messages  # noqa: E402
from agentprm.prm.model import ValueHeadPRM, encode_for_scoring  # noqa: E402
from agentprm.prm.train import batches_of_epoch, grouped_step_values  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tests.prm_helpers import scripted_trajectory, tiny_backbone_dir, tiny_tokenizer

    rng = random.Random(0)
    trajs = [scripted_trajectory(f"line_4_{i}", 0.3, rng, max_rounds=rng.randint(2, 20), i=i) for i in range(args.n)]
    tok = tiny_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        tiny_backbone_dir(Path(tmp) / "bb", tok, hidden=128, layers=4)
        model = ValueHeadPRM.from_backbone(Path(tmp) / "bb")
    encs = [encode_for_scoring(tok, trajectory_messages(t)) for t in trajs]
    batches = batches_of_epoch(len(encs), args.batch, 0, 0)
    real = sum(len(e.input_ids) for e in encs)
    padded = sum(len(b) * max(len(encs[i].input_ids) for i in b) for b in batches)
    res = {}
    q, mask = grouped_step_values(model, [encs[i] for i in batches[0]], tok.pad_token_id)  # warm-up
    q[mask].sum().backward()
    for name, slack in (("one padded batch", 1e9), ("length-grouped", 1.25)):
        t0 = time.perf_counter()
        for b in batches:
            q, mask = grouped_step_values(model, [encs[i] for i in b], tok.pad_token_id, slack=slack)
            q[mask].pow(2).mean().backward()
        res[name] = time.perf_counter() - t0
        print(f"{name:18s}: {res[name]:6.2f} s  {real / res[name]:8.0f} real tokens/s", flush=True)
    print(
        f"{len(encs)} trajectories, {real} real tokens; one padded batch forwards {padded} ({padded / real - 1:.0%} padding)"
    )
    print(f"speed-up: {res['one padded batch'] / res['length-grouped']:.1f}x")


if __name__ == "__main__":
    main()
