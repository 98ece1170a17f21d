"""Kill drills, long form: every stage SIGKILLed N times at seeded random moments, rerun, compared with
an uninterrupted run (the short form, one kill per stage, is tests/test_kill_resume.py).

    PYTHONPATH=src python benchmarks/kill_drills.py --drills 3 [--stages collect,train-prm] [--seed 0] [--keep DIR]

Prints one line per stage (reference time, kills, resumed identical, what each kill left behind) and a
markdown table for docs/reliability.md. Exit code 1 when any drill fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from agentprm.testing.kill_drills import drills, run_drills  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--drills", type=int, default=3, help="kills per stage")
    ap.add_argument("--stages", default="", help=f"comma-separated subset of: {', '.join(d.name for d in drills())}")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    only = [s for s in args.stages.split(",") if s] or None
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        results = run_drills(root, args.drills, seed=args.seed, only=only, log=lambda s: print(s, flush=True))
    print("\n| stage | reference run (s) | kills | finished before the kill | resumed identical | failures |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r.stage} | {r.reference_s:.1f} | {r.kills} | {r.finished_first} | {r.passed}/{r.kills + r.finished_first} | "
            f"{'; '.join(r.failures) or 'none'} |"
        )
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
