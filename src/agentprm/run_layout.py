"""`RunLayout`: every path of a run folder, for the pipeline that writes it and the report that reads it.

```
runs/<name>/
  config.yaml                                   the pipeline's config (named under every figure)
  demos.jsonl, demos.done                       expert demos (the marker: the demo stage finished)
  policy/                                       the SFT policy
  policy-rft/                                   the RFT policy (SFT trained further on its own successful trajectories)
  trajectories.jsonl                            collected training trajectories (N per task)
  labels/<method>.jsonl                         labelled trajectories (td-gae, pvm, orm, mc): Table 3's label cost
  prm/<name>/                                   one trained PRM per objective (agentprm, pvm, orm, mc, mc-la, agentprm-beta0)
  eval/<env>/greedy.jsonl                       greedy decoding of the SFT policy
  eval/<env>/rft/greedy.jsonl                   greedy decoding of the RFT policy
  eval/<env>/samples_<N>.jsonl                  best-of-n samples shared by every RM (one sampling run, N per task)
  eval/<env>/<rm>/bon_<N>.jsonl                 best-of-n at budget N (curve 1..N from its candidates)
  eval/<env>/<rm>/beam_<N>x<M>.jsonl            beam search @NxM
  stages.jsonl                                  each stage's start and end (times; read by `agentprm view`)
  provenance/<output path>.json                 what produced each output (`agentprm.stage_keys.Provenance`)
  report.md, plots/*.png                        written by `agentprm report`
```
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agentprm.search.budget import Budget

_RESULT = re.compile(r"^(bon)_(\d+)$|^(beam)_(\d+x\d+)$")


@dataclass(frozen=True)
class ResultPath:
    """One search result file of a run folder, with what its path says it holds."""

    env: str
    strategy: str  # greedy | bon | beam
    rm: str | None  # None for greedy
    budget: Budget
    path: Path


@dataclass(frozen=True)
class RunLayout:
    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def demos(self) -> Path:
        return self.root / "demos.jsonl"

    @property
    def demos_done(self) -> Path:
        return self.root / "demos.done"

    @property
    def policy(self) -> Path:
        return self.root / "policy"

    @property
    def rft_policy(self) -> Path:
        return self.root / "policy-rft"

    @property
    def trajectories(self) -> Path:
        return self.root / "trajectories.jsonl"

    @property
    def labels_dir(self) -> Path:
        return self.root / "labels"

    def label(self, method: str) -> Path:
        return self.labels_dir / f"{method}.jsonl"

    def prm(self, name: str) -> Path:
        return self.root / "prm" / name

    def eval_dir(self, env: str) -> Path:
        return self.root / "eval" / env

    def result(self, env: str, strategy: str, rm: str | None = None, budget: Budget | str | None = None) -> Path:
        """The result file of one search: greedy (of the SFT policy, or with `rm="rft"` of the RFT policy), or
        `rm` under best-of-n / beam at `budget`."""
        if strategy == "greedy":
            return self.eval_dir(env) / (f"{rm}/greedy.jsonl" if rm else "greedy.jsonl")
        if rm is None or budget is None:
            raise ValueError(f"a {strategy} result needs a reward model and a budget")
        b = budget if isinstance(budget, Budget) else Budget.parse(strategy, budget)
        return self.eval_dir(env) / rm / f"{strategy}_{b}.jsonl"

    def samples(self, env: str, n: int) -> Path:
        return self.eval_dir(env) / f"samples_{n}.jsonl"

    def provenance(self, output: Path) -> Path:
        """Where the record of what produced `output` (a file or folder of this run) is kept."""
        return self.root / "provenance" / (str(Path(output).relative_to(self.root)) + ".json")

    @property
    def stage_log(self) -> Path:
        """One JSON line per pipeline stage start/end (`agentprm view` shows status and times)."""
        return self.root / "stages.jsonl"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    def results(self) -> Iterator[ResultPath]:
        """Every result file under eval/ whose path follows the layout (any file, empty or not)."""
        for env_dir in sorted(p for p in (self.root / "eval").glob("*") if p.is_dir()):
            env = env_dir.name
            if (env_dir / "greedy.jsonl").is_file():
                yield ResultPath(env, "greedy", None, Budget(1), env_dir / "greedy.jsonl")
            for rm_dir in sorted(p for p in env_dir.iterdir() if p.is_dir()):
                if (rm_dir / "greedy.jsonl").is_file():  # another policy's greedy decoding (rft)
                    yield ResultPath(env, "greedy", rm_dir.name, Budget(1), rm_dir / "greedy.jsonl")
                for f in sorted(rm_dir.glob("*.jsonl")):
                    m = _RESULT.match(f.stem)
                    if m:
                        strategy, text = (m[1], m[2]) if m[1] else (m[3], m[4])
                        yield ResultPath(env, strategy, rm_dir.name, Budget.parse(strategy, text), f)
