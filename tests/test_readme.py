"""The README's test command is exactly what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci_cmd = [ln for ln in (ROOT / ".ci/run").read_text().splitlines() if ln.startswith("python3 -m venv")]
    assert len(ci_cmd) == 1
    assert ci_cmd[0] in (ROOT / "README.md").read_text()
