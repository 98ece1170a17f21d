"""What the viewer reads in a run folder: `agentprm.run_layout.RunLayout`'s paths, plus the listings
the viewer needs (stage log, TensorBoard dirs, label files, trained PRMs, result files by budget).

The viewer reads the folder as it is, while a pipeline may still be writing it: every method here only
looks, never creates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agentprm.run_layout import RunLayout

_SAMPLES = re.compile(r"^samples_(\d+)$")
_SEARCH = re.compile(r"^(bon)_(\d+)$|^(beam)_(\d+x\d+)$")


@dataclass(frozen=True)
class SearchFile:
    env: str
    rm: str
    strategy: str  # bon | beam
    budget: str
    path: Path


class RunPaths(RunLayout):
    @property
    def name(self) -> str:
        return self.root.resolve().name

    def event_dirs(self) -> list[Path]:
        """Folders holding TensorBoard event files (each training writes `<its out dir>/tb`)."""
        from agentprm.tracking import event_dirs

        return event_dirs(self.root)

    def label_files(self) -> dict[str, Path]:
        return {p.stem: p for p in sorted((self.root / "labels").glob("*.jsonl"))}

    def prm_dirs(self) -> dict[str, Path]:
        """Trained reward models by name (a dir counts once its value head is saved)."""
        return {p.name: p for p in sorted((self.root / "prm").glob("*")) if (p / "value_head.safetensors").is_file()}

    def eval_envs(self) -> list[str]:
        return sorted(p.name for p in (self.root / "eval").glob("*") if p.is_dir())

    def greedy(self, env: str) -> Path:
        return self.result(env, "greedy")

    def samples_by_budget(self, env: str) -> dict[str, Path]:
        """Best-of-n candidate files by budget ("16": eval/<env>/samples_16.jsonl)."""
        out = {}
        for p in sorted((self.root / "eval" / env).glob("samples_*.jsonl")):
            m = _SAMPLES.match(p.stem)
            if m:
                out[m[1]] = p
        return out

    def search_files(self, env: str) -> list[SearchFile]:
        out = []
        for rm_dir in sorted(p for p in (self.root / "eval" / env).glob("*") if p.is_dir()):
            for f in sorted(rm_dir.glob("*.jsonl")):
                m = _SEARCH.match(f.stem)
                if m:
                    strategy, budget = (m[1], m[2]) if m[1] else (m[3], m[4])
                    out.append(SearchFile(env, rm_dir.name, strategy, budget, f))
        return out

    def resolve(self, rel: str) -> Path:
        """A file named relative to the run folder; anything outside it is refused."""
        p = (self.root / rel).resolve()
        if self.root.resolve() not in p.parents:
            raise FileNotFoundError(rel)
        return p

    def rel(self, path: Path) -> str:
        return str(path.resolve().relative_to(self.root.resolve()))
