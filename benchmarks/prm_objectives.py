"""Train tiny PRMs per objective/lr on scripted trajectories; print losses and held-out separation.

OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/prm_objectives.py 1e-4,3e-4,1e-3 agentprm pvm orm
"""

import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)
from agentprm.prm.evaluate import separation
from agentprm.prm.model import PRMScorer
from agentprm.prm.train import PRMTrainConfig, train_prm
from tests.prm_helpers import scripted_trajectory, tiny_backbone_dir

rng = random.Random(0)


def mk(n, off):
    return [
        scripted_trajectory(f"line_{1 + i % 4}_{i}", rng.choice([0.3, 0.6, 0.9]), rng, max_rounds=8, i=i + off)
        for i in range(n)
    ]


train, test = mk(200, 0), mk(100, 1000)
tmp = Path(tempfile.mkdtemp())
tiny_backbone_dir(tmp / "bb", hidden=128, layers=4)
for obj in sys.argv[2:]:
    for lr in [float(x) for x in sys.argv[1].split(",")]:
        cfg = PRMTrainConfig.preset("tiny", objective=obj, lr=lr)
        t0 = time.time()
        L: list = []
        r = train_prm(train, tmp / "bb", tmp / f"{obj}{lr}", cfg, on_step=lambda s, n, lq, la, L=L: L.append((lq, la)))
        dt = time.time() - t0
        sep = separation(PRMScorer.load(tmp / f"{obj}{lr}"), test)
        k = len(L) // 5
        print(
            obj,
            lr,
            f"{dt:.0f}s steps={r.steps}",
            "LQ",
            [round(sum(x[0] for x in L[i : i + k]) / k, 4) for i in range(0, len(L), k)],
            "LA",
            round(sum(x[1] for x in L[-k:]) / k, 4),
            f"sep step_auc={sep.step_auroc:.3f} last_auc={sep.last_step_auroc:.3f}",
            flush=True,
        )
