"""The `agentprm` Typer app every command module registers on (its own module, so that the command modules
and the package that imports them do not import each other)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="agentprm",
    help="Process reward models for LLM agents (AgentPRM): envs, demos, policies, step labels, PRMs, search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
