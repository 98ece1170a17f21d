"""`agentprm label | train-prm | export-prm-data | prm-separation`: thin wrappers over labels/ and prm/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from agentprm.cli.common import ReportToOpt, config_options, existing_file, progress, resumable, writable_path
from agentprm.cli.root import app
from agentprm.errors import UserError
from agentprm.prm.config import OBJECTIVES, PRESETS, PRMTrainConfig

TrajOpt = Annotated[Path, typer.Option(help="Trajectories JSONL (from `agentprm collect`).")]


def _read_trajectories(path: Path):
    from agentprm.labels.run import usable
    from agentprm.trajectory import read_trajectories

    trajs = read_trajectories(existing_file(path, "trajectories file"))
    good = [t for t in trajs if usable(t)]
    if not good:
        raise UserError(f"{path} has no finished trajectories (all empty or env/policy errors); collect some first")
    return good, len(trajs) - len(good)


def _load_policy(spec: str) -> Any:
    """A Policy from an HF dir, or from `module:callable` (a factory returning a Policy)."""
    import importlib

    if ":" in spec and not Path(spec).exists():
        module, _, attr = spec.partition(":")
        return getattr(importlib.import_module(module), attr)()
    from agentprm.search.loading import load_policy

    return load_policy(spec)


@app.command()
def label(
    method: Annotated[str, typer.Option(help="td-gae | pvm | orm | mc.")] = "td-gae",
    trajectories: TrajOpt = Path("trajectories.jsonl"),
    out: Annotated[Path, typer.Option(help="Labels JSONL (appended: a rerun resumes).")] = Path("labels.jsonl"),
    prm: Annotated[Path | None, typer.Option(help="td-gae: bootstrap Q from this PRM dir (default Q = 0).")] = None,
    gamma: Annotated[float, typer.Option(help="Discount γ (not given in the paper; Eq 7-8 need 1).")] = 1.0,
    lam: Annotated[float, typer.Option(help="GAE λ (paper: 0.95).")] = 0.95,
    bootstrap: Annotated[
        str, typer.Option(help="td-gae form: literal (paper Eq 12-14) | next (SARSA(λ)).")
    ] = "literal",
    binary_outcome: Annotated[bool, typer.Option(help="Use 0/1 success as r instead of the raw env reward.")] = False,
    env: Annotated[str, typer.Option(help="mc: environment name.")] = "",
    policy: Annotated[str, typer.Option(help="mc: policy HF dir (or module:factory).")] = "",
    n_mc: Annotated[int, typer.Option(help="mc: rollouts per step (paper: 16).")] = 16,
    soft: Annotated[bool, typer.Option(help="mc: mean outcome instead of the paper's any-success.")] = False,
    temperature: Annotated[float, typer.Option(help="mc: rollout temperature.")] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(help="mc: token cap per turn.")] = 128,
    seed: Annotated[int, typer.Option(help="mc: sampling seed.")] = 0,
    ray: Annotated[
        str | None,
        typer.Option(
            help="mc: run the rollouts on Ray: `auto` (local cluster) or a cluster address. Needs the `ray` extra."
        ),
    ] = None,
    ray_workers: Annotated[
        int, typer.Option(help="mc --ray: actors, each with a policy replica (0: one per cluster CPU).")
    ] = 0,
) -> None:
    """Write per-step labels of a trajectory file (one record per trajectory) with their token cost."""
    from agentprm.labels.outcome import LabelSettings
    from agentprm.labels.store import METHODS, read_labels
    from agentprm.labels.td_gae import BOOTSTRAPS
    from agentprm.trajectory import JsonlWriter

    if method not in METHODS:
        raise UserError(f"unknown --method {method!r}; choose one of: {', '.join(METHODS)}")
    if bootstrap not in BOOTSTRAPS:
        raise UserError(f"unknown --bootstrap {bootstrap!r}; choose one of: {', '.join(BOOTSTRAPS)}")
    if method == "mc" and (not env or not policy):
        raise UserError("--method mc needs --env and --policy (the rollouts sample from the policy)")
    writable_path(out)
    trajs, n_bad = _read_trajectories(trajectories)
    done = set(read_labels(out)) if out.exists() else set()
    todo = [t for t in trajs if t.id not in done]
    settings = LabelSettings(gamma, lam, bootstrap, binary_outcome)
    tokens = 0
    with JsonlWriter(out) as w, progress() as bar:
        task = bar.add_task(f"label {method}", total=len(todo), status="")
        if method == "mc" and ray:
            from agentprm.envs import get_spec
            from agentprm.scale.ray_jobs import MCLabelStage, RayOptions, mc_label_on_ray

            get_spec(env)
            stage = MCLabelStage(
                policy=policy,
                env=env,
                n_mc=n_mc,
                soft=soft,
                binary_outcome=binary_outcome,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                seed=seed,
            )

            def on_record(d):
                nonlocal tokens
                tokens += d["sampled_tokens"]
                bar.update(task, advance=1, status=f"{tokens} tokens")

            w.close()  # the Ray driver appends to OUT itself
            mc_label_on_ray(stage, todo, out, RayOptions(address=ray, workers=ray_workers), on_record=on_record)
        elif method == "mc":
            from agentprm.envs import get_spec
            from agentprm.labels.run import mc_label_records

            records = mc_label_records(
                todo,
                get_spec(env).make,
                _load_policy(policy),
                n_mc=n_mc,
                soft=soft,
                binary_outcome=binary_outcome,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                seed=seed,
            )
            for rec in records:
                w.write(rec.to_dict())
                tokens += rec.sampled_tokens
                bar.update(task, advance=1, status=f"{tokens} tokens")
        else:
            from agentprm.labels.run import outcome_label_records

            scorer = None
            if prm is not None:
                from agentprm.prm.model import PRMScorer

                scorer = PRMScorer.load(prm)
            for rec in outcome_label_records(method, todo, settings, scorer):
                w.write(rec.to_dict())
                tokens += rec.sampled_tokens
                bar.update(task, advance=1, status=f"{tokens} tokens")
    print(
        f"labelled {len(todo)} trajectories with {method} ({len(done)} already done, {n_bad} skipped: errors/empty); "
        f"sampled tokens: {tokens} -> {out}"
    )


@app.command("train-prm")
@config_options(
    PRMTrainConfig,
    into="settings",
    presets={p: PRMTrainConfig.preset(p) for p in PRESETS},
    panel="Training settings (PRMTrainConfig; an option given overrides the preset)",
)
def train_prm_cmd(
    trajectories: TrajOpt = Path("trajectories.jsonl"),
    out: Annotated[Path, typer.Option(help="Output PRM dir (HF dir + value_head.safetensors).")] = Path("prm"),
    init: Annotated[Path, typer.Option(help="Backbone HF dir; the paper initialises from the SFT policy.")] = Path(
        "policy"
    ),
    labels: Annotated[Path | None, typer.Option(help="mc: labels JSONL from `agentprm label --method mc`.")] = None,
    preset: Annotated[
        str,
        typer.Option(
            help="auto | tiny | paper: the settings not given as options. paper: lr 1e-6, 5 epochs; tiny: for "
            "the from-scratch CPU backbone; auto: tiny below 50M params."
        ),
    ] = "auto",
    settings: dict[str, Any] | None = None,
    force: Annotated[bool, typer.Option(help="Retrain even if OUT holds a finished PRM.")] = False,
    report_to: ReportToOpt = "tensorboard",
) -> None:
    """Train a PRM (Algorithm 1 for agentprm). Rerunning after an interruption resumes from the checkpoint.

    Runs unchanged under `accelerate launch` (data parallel; --batch-size stays the global batch)."""
    from agentprm.prm.train import is_trained, train_prm
    from agentprm.tracking import check_report_to

    check_report_to(report_to)
    given = settings or {}
    objective = given.get("objective", PRMTrainConfig.objective)
    if objective not in OBJECTIVES:
        raise UserError(f"unknown --objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    if preset not in ("auto", *PRESETS):
        raise UserError(f"unknown --preset {preset!r}; choose auto, tiny or paper")
    if not (init / "config.json").is_file():
        raise UserError(f"--init {init} is not an HF model dir (no config.json); give the SFT policy dir")
    if objective == "mc" and labels is None:
        raise UserError("--objective mc needs --labels FILE (make it with `agentprm label --method mc`)")
    if is_trained(out) and not force:
        print(f"{out} already holds a trained PRM; --force to retrain")
        return
    if force and out.exists():
        shutil.rmtree(out)
    if preset == "auto":
        preset = "tiny" if _param_count(init) < 50e6 else "paper"
    try:
        cfg = PRMTrainConfig.preset(preset, **given)
        cfg.validate()
    except ValueError as e:
        raise UserError(str(e)) from None
    trajs, n_bad = _read_trajectories(trajectories)
    mc = None
    if objective == "mc":
        from agentprm.labels.store import read_labels

        assert labels is not None  # checked above: --objective mc needs --labels
        # an unlabelled step stays None, as the pipeline passes it
        mc = {
            k: [None if v is None else float(v) for v in r.labels]
            for k, r in read_labels(existing_file(labels, "labels file")).items()
        }
    with progress() as bar:
        task = bar.add_task(f"train-prm {objective}", total=None, status="")

        rate = [0.0]

        def on_step(step: int, total: int, lq: float, la: float) -> None:
            bar.update(task, completed=step, total=total, status=f"L_Q {lq:.4f}  L_A {la:.4f}  {rate[0]:,.0f} tok/s")

        try:
            with resumable("train-prm"):  # Ctrl-C writes a checkpoint first
                res = train_prm(
                    trajs,
                    init,
                    out,
                    cfg,
                    mc_labels=mc,
                    on_step=on_step,
                    report_to=report_to,
                    on_rate=lambda r: rate.__setitem__(0, r),
                )
        except ValueError as e:
            raise UserError(str(e)) from None
    note = f", resumed at step {res.resumed_from_step}" if res.resumed_from_step else ""
    print(
        f"trained {objective} PRM ({preset} preset) on {res.items} trajectories, {res.steps} steps{note}; "
        f"loss {res.first_loss:.4f} -> {res.last_loss:.4f}; {res.tokens_per_s:,.0f} tokens/s; skipped {res.skipped}, {n_bad} error/empty -> {out}"
    )


def _param_count(init: Path) -> float:
    """Parameters of an HF dir from its config (no weights loaded): hidden² · layers · 12 + embeddings."""
    cfg = json.loads((init / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    h, n, v = cfg.get("hidden_size", 0), cfg.get("num_hidden_layers", 0), cfg.get("vocab_size", 0)
    return 12 * h * h * n + v * h


@app.command("export-prm-data")
def export_prm_data(
    trajectories: TrajOpt = Path("trajectories.jsonl"),
    labels: Annotated[Path, typer.Option(help="Labels JSONL from `agentprm label`.")] = Path("labels.jsonl"),
    out: Annotated[
        Path, typer.Option(help="Output JSONL in TRL's stepwise format {prompt, completions, labels}.")
    ] = Path("trl.jsonl"),
    threshold: Annotated[float, typer.Option(help="TRL labels are booleans: label >= threshold.")] = 0.5,
    raw: Annotated[bool, typer.Option(help="Keep float labels instead of booleans.")] = False,
) -> None:
    """Export labelled trajectories to TRL's stepwise-supervision format."""
    from agentprm.labels.store import read_labels, to_trl_stepwise
    from agentprm.trajectory import JsonlWriter

    writable_path(out)
    trajs, _ = _read_trajectories(trajectories)
    recs = read_labels(existing_file(labels, "labels file"))
    n = 0
    if out.exists():
        out.unlink()
    with JsonlWriter(out) as w:
        for t in trajs:
            if t.id in recs:
                w.write(to_trl_stepwise(t, recs[t.id].labels, None if raw else threshold))
                n += 1
    print(f"wrote {n} rows ({len(trajs) - n} trajectories without labels) -> {out}")


@app.command("prm-separation")
def prm_separation(
    prm: Annotated[Path, typer.Option(help="PRM dir.")] = Path("prm"),
    trajectories: TrajOpt = Path("trajectories.jsonl"),
) -> None:
    """How well the PRM's scores separate steps of successful from failed (held-out) trajectories."""
    from dataclasses import asdict

    from agentprm.prm.evaluate import separation
    from agentprm.prm.model import PRMScorer

    if not (prm / "value_head.safetensors").is_file():
        raise UserError(f"--prm {prm} is not a PRM dir; train one with `agentprm train-prm`")
    trajs, _ = _read_trajectories(trajectories)
    print(json.dumps(asdict(separation(PRMScorer.load(prm), trajs))))
