"""The experiment report: `write_report(run_dir)` reads a run folder (layout in `agentprm.report.layout`)
and writes report.md with the paper's tables and plots/*.png. Missing pieces are listed as "not run"."""

from agentprm.report.build import write_report
from agentprm.report.layout import RunFolder

__all__ = ["RunFolder", "write_report"]
