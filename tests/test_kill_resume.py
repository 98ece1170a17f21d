"""Kill drills, short form (issue 21 item 1; issue 18 item 5): each stage SIGKILLed once at a seeded random
moment, rerun, and compared with an uninterrupted run: same ids and contents, no duplicate, no torn line,
PRM checkpoints that load with the same weights. `benchmarks/kill_drills.py --drills N` runs more.
"""

from __future__ import annotations

from agentprm.testing.kill_drills import drills, run_drills


def test_every_stage_survives_a_kill(tmp_path):
    lines: list[str] = []
    results = run_drills(tmp_path, kills_per_stage=1, seed=0, log=lines.append)
    print("\n".join(lines))
    assert [r.stage for r in results] == [d.name for d in drills()]
    for r in results:
        assert r.passed == 1 and not r.failures, (r.stage, r.failures)
    # the drills really killed something (a child finishing before its kill time is redrawn, 3 tries)
    assert sum(r.kills for r in results) >= len(results) - 1, lines
