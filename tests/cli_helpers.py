"""Running the CLI as a user does (through `main`, which turns a UserError into one line and exit code 2)."""

from __future__ import annotations

import contextlib
import io
import sys


def run_main(args: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of `agentprm ARGS` run in this process."""
    from agentprm.cli import main

    err = io.StringIO()
    argv = sys.argv
    sys.argv = ["agentprm", *args]
    code: int | str | None = 0
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main()
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    return (code if isinstance(code, int) else (0 if code is None else 1)), err.getvalue()
