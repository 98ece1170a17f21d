"""The experiment report: `write_report(run_dirs, out_dir)` reads one run folder or several (`RunSet`; layout
in `agentprm.report.layout`) and writes report.md with the paper's tables and plots/*.png. Missing pieces are
listed as "not run"."""

from agentprm.report.build import write_report
from agentprm.report.layout import RunFolder, RunSet

__all__ = ["RunFolder", "RunSet", "write_report"]
