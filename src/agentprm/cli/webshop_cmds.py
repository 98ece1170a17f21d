"""`agentprm webshop-check`: which WebShop catalogue is in use and how the oracle does on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentprm.cli.common import progress
from agentprm.cli.root import app


@app.command("webshop-check")
def webshop_check(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Real WebShop data dir (items_shuffle_1000.json, items_ins_v2_1000.json, "
            "items_human_ins.json); default: $AGENTPRM_WEBSHOP_DATA, else the synthetic catalogue."
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="train or test.")] = "test",
    n: Annotated[int, typer.Option(help="Tasks to run the oracle on (0: all of the split).")] = 200,
) -> None:
    """Load a WebShop catalogue, say which one it is, and run the oracle shopper on a split."""
    from agentprm.envs.base import check_split
    from agentprm.envs.webshop.env import WebShopEnv
    from agentprm.envs.webshop.expert import oracle_report

    check_split(split)
    env = WebShopEnv(data=data)
    for k, v in env.describe().items():
        print(f"{k:>12}: {v}")
    ids = env.task_ids(split, n or None)
    with progress() as bar:
        job = bar.add_task(f"oracle webshop/{split}", total=len(ids), status="")
        rep = oracle_report(env, split, n or None, progress=lambda i: bar.update(job, advance=1))
    print(
        f"oracle on {rep.n} {split} tasks of {rep.catalogue}: mean reward {rep.mean_reward:.3f}, "
        f"success {rep.success_rate:.1%}, bought the goal product {rep.found_goal_rate:.1%}, "
        f"goal product in the top 10 for its instruction {rep.goal_top10_rate:.1%}"
    )
