"""Small helpers shared by CLI commands: input checks that end in one line naming the fix."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
import typing
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from agentprm.errors import UserError
from agentprm.progress import progress as progress  # the commands' bar (pipeline.py imports it from here too)
from agentprm.typed_config import setting_help


def writable_path(path: Path) -> Path:
    """Fail early (one line) when `path` cannot be written, before any long work starts."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create directory {parent}: {e.strerror}; choose another --out") from None
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a file path to --out")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write {path}: permission denied; choose another --out")
    return path


def writable_dir(path: Path, flag: str) -> Path:
    """Fail early (one line) when folder `path` cannot be created or written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create folder {path}: {e.strerror}; choose another {flag}") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"cannot write in {path}: permission denied; choose another {flag}")
    return path


def existing_file(path: Path, what: str = "file") -> Path:
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    return path


@contextmanager
def resumable(what: str):
    """Ctrl-C ends the command with one line saying that its state is kept and how to resume (exit 130)."""
    try:
        yield
    except KeyboardInterrupt:
        print(f"\n{what}: interrupted; what finished is saved: rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None


# Training curves (agentprm.tracking), Hugging Face's option name and values.
ReportToOpt = Annotated[
    str,
    typer.Option(
        "--report-to",
        help="Where training curves go: tensorboard (event files in OUT/tb), wandb (needs the wandb "
        "package), none, or a comma list.",
    ),
]


def _shown(value: Any, flag: str) -> str:
    if isinstance(value, bool):
        return flag if value else f"no-{flag}"
    return str(value)


def config_options(
    cls: type, *, into: str, presets: Mapping[str, Any] | None = None, panel: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one option per field of dataclass `cls` (`--field-name`; `--x/--no-x` for a bool),
    with the help its `typed_config.setting` declares, so a new field is a new option without a second
    declaration. The command's parameter `into` (not an option itself) receives the fields given on the
    command line as a dict; a field left out is absent, so a preset or the dataclass default decides it.
    `presets` (name -> instance) only shows each preset's value in `--help` where they differ."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(command, eval_str=True)
        own = list(sig.parameters.values())
        names = {f.name for f in fields}
        if into not in sig.parameters or names & set(sig.parameters):
            raise TypeError(f"{command.__name__}: needs a parameter {into!r} and no {cls.__name__} field as its own")
        options = []
        for f in fields:
            hint, flag = hints[f.name], f.name.replace("_", "-")
            if not setting_help(f):
                raise TypeError(f"{cls.__name__}.{f.name} has no help: declare it with typed_config.setting")
            by_preset = {n: _shown(getattr(p, f.name), flag) for n, p in (presets or {"": cls()}).items()}
            shown = next(iter(by_preset.values()))
            if len(set(by_preset.values())) > 1:
                shown = "per preset: " + ", ".join(f"{n} {v}" for n, v in by_preset.items())
            decls = (f"--{flag}/--no-{flag}",) if hint is bool else (f"--{flag}", *f.metadata.get("flags", ()))
            info = typer.Option(*decls, help=setting_help(f), show_default=shown, rich_help_panel=panel)
            options.append(
                inspect.Parameter(
                    f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[hint | None, info]
                )
            )
        at = own.index(sig.parameters[into])
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at]] + options
        params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[at + 1 :]]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            given = {n: kwargs.pop(n) for n in names}
            return command(**kwargs, **{into: {k: v for k, v in given.items() if v is not None}})

        run.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return decorate


MaxRoundsOpt = Annotated[
    int, typer.Option(help="Cap episodes at this many rounds (0: the env's own, AgentGym's and the paper's).")
]
# collect / eval: the policy's weights in bf16, in process and on every --ray worker.
Bf16Opt = Annotated[
    bool,
    typer.Option(
        help="Run the policy in bf16 (about 2x faster for pretrained models on CPUs with bf16; greedy choices can "
        "differ from fp32 where logits tie closely). With --ray every worker loads it in bf16."
    ),
]


def check_max_rounds(max_rounds: int) -> None:
    """`--max-rounds`: 0 or positive (on Ray too: the workers build their envs with the same cap)."""
    if max_rounds < 0:
        raise UserError("--max-rounds must be 0 (the env's own) or positive")
