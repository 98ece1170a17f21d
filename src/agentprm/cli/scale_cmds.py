"""`agentprm serve-prm`: a trained PRM as an HTTP scoring service (thin over `agentprm.serve.prm`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentprm.cli.root import app


@app.command("serve-prm")
def serve_prm(
    rm: Annotated[Path, typer.Option(help="PRM directory (`agentprm train-prm --out`, e.g. runs/NAME/prm/agentprm).")],
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 36100,
    device: Annotated[str, typer.Option(help="torch device for the PRM (cpu, cuda, cuda:1).")] = "cpu",
    max_wait_ms: Annotated[float, typer.Option(help="How long a request waits for others to share its batch.")] = 5.0,
    max_batch_tokens: Annotated[
        int, typer.Option(help="Tokens gathered from concurrent requests into one scoring call.")
    ] = 32768,
    batch_tokens: Annotated[
        int,
        typer.Option(help="Tokens per forward pass inside a scoring call (padded width x rows; raise it on a GPU)."),
    ] = 4096,
    max_request_mb: Annotated[float, typer.Option(help="Largest request body (413 above).")] = 8.0,
    max_request_conversations: Annotated[
        int, typer.Option(help="Most conversations (or candidates, or queries) in one request (413 above).")
    ] = 512,
    max_conversation_tokens: Annotated[
        int, typer.Option(help="Longest conversation in tokens (413 above; 0: the PRM's max length).")
    ] = 0,
    threads: Annotated[int, typer.Option(help="torch threads (0: torch's default).")] = 0,
    lifetime: Annotated[float, typer.Option(help="Stop after this many seconds (0: run until interrupted).")] = 0.0,
) -> None:
    """Serve a PRM over HTTP: POST /score, /score_candidates, /get_reward (OpenRLHF's shape), GET /health.
    Concurrent requests are batched. Use it with `agentprm search --rm http://HOST:PORT`."""
    from agentprm.errors import UserError
    from agentprm.serve import serve
    from agentprm.serve.prm import ServeLimits, create_prm_app

    if not (rm / "prm_config.json").is_file():
        raise UserError(f"{rm} is not a PRM dir (no prm_config.json); train one with `agentprm train-prm --out {rm}`")
    if not 0 < port < 65536:
        raise UserError(f"--port {port} is out of range 1..65535")
    if min(max_batch_tokens, batch_tokens, max_request_conversations) < 1 or max_request_mb <= 0 or max_wait_ms < 0:
        raise UserError(
            "--max-batch-tokens, --batch-tokens, --max-request-conversations and --max-request-mb must be positive, --max-wait-ms >= 0"
        )
    if threads:
        import torch

        torch.set_num_threads(threads)
    from agentprm.prm.model import PRMScorer

    try:
        scorer = PRMScorer.load(rm, device=device, name=rm.name, batch_tokens=batch_tokens)
    except (RuntimeError, AssertionError) as e:
        raise UserError(f"cannot put the PRM on --device {device}: {e}") from None
    limits = ServeLimits(
        max_wait_ms,
        max_batch_tokens,
        int(max_request_mb * (1 << 20)),
        max_request_conversations,
        max_conversation_tokens,
    )
    application = create_prm_app(scorer, limits, name=rm.name)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {host}: anyone who can reach it can use the PRM (no authentication)")
    print(f"serving PRM {rm} on http://{host}:{port}; use --rm http://{host}:{port}", flush=True)
    try:
        serve(application, host, port, lifetime_s=lifetime or None)
    except OSError as e:
        raise UserError(f"cannot bind {host}:{port}: {e.strerror}; choose another --port") from None
