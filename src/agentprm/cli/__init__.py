"""`agentprm` command line: a thin layer over the library. Each area adds its commands in its own module."""

from __future__ import annotations

import errno
import sys

from agentprm.cli import (  # each registers its commands on `app` at import
    env_cmds,  # noqa: F401
    pipeline_cmds,  # noqa: F401
    policy_cmds,  # noqa: F401
    prm_cmds,  # noqa: F401
    rl_cmds,  # noqa: F401
    scale_cmds,  # noqa: F401
    search_cmds,  # noqa: F401
    serve_cmds,  # noqa: F401
    view_cmds,  # noqa: F401
    webshop_cmds,  # noqa: F401
)
from agentprm.cli.root import app
from agentprm.disk import DiskFullError
from agentprm.errors import RewardModelError, UserError

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except UserError as e:
        print(f"agentprm: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a full disk in a writer without its own message: still one line, exit 2
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"agentprm: error: {DiskFullError(e.filename or 'the output')}", file=sys.stderr)
        sys.exit(2)
    except RewardModelError as e:  # a runtime failure, not bad input: finished work is saved, a rerun resumes
        print(f"agentprm: error: {e}; finished results are saved: rerun the same command to resume", file=sys.stderr)
        sys.exit(1)
    except SystemExit as e:
        if e.code == 130:  # Ctrl-C, state saved (cli.common.resumable): skip the interpreter's teardown,
            import os  # whose garbage collection of torch/transformers took 20-60 s on a loaded machine

            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        raise
