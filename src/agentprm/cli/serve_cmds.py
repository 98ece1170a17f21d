"""`agentprm serve-env`: one of our envs behind AgentGym's HTTP protocol."""

from __future__ import annotations

from typing import Annotated

import typer

from agentprm.cli.root import app


@app.command("serve-env")
def serve_env(
    env: Annotated[str, typer.Option(help="Environment to serve (see `agentprm envs`).")] = "textcraft",
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 36001,
    protocol: Annotated[
        str,
        typer.Option(
            help="Whose endpoints and shapes to copy: textcraft | babyai (id dialect) | webshop (env_idx). Default: the env's own."
        ),
    ] = "",
    max_envs: Annotated[
        int, typer.Option(help="Most live env ids; creating more evicts idle, then least recently used ones.")
    ] = 1024,
    idle_seconds: Annotated[
        float, typer.Option(help="Env ids unused this long are evicted at the next create.")
    ] = 3600.0,
    lifetime: Annotated[float, typer.Option(help="Stop after this many seconds (0: run until interrupted).")] = 0.0,
) -> None:
    """Serve an env over AgentGym's HTTP protocol, so AgentGym's clients (and `--env agentgym:NAME@URL`) drive it."""
    from agentprm.envs import get_spec
    from agentprm.errors import UserError
    from agentprm.serve import PROTOCOLS, create_app, default_protocol, serve

    if env.startswith("agentgym:"):
        raise UserError("serve-env serves agentprm's own envs; give a name from `agentprm envs`")
    spec = get_spec(env)
    proto = protocol or default_protocol(env)
    if proto not in PROTOCOLS:
        raise UserError(f"choose --protocol for {env!r}: one of {', '.join(PROTOCOLS)}")
    if not 0 < port < 65536:
        raise UserError(f"--port {port} is out of range 1..65535")
    if max_envs < 1:
        raise UserError("--max-envs must be at least 1")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {host}: anyone who can reach it can drive the env (no authentication)")
    application = create_app(spec.make, proto, max_envs=max_envs, idle_seconds=idle_seconds)
    print(f"serving {env} ({proto} protocol) on http://{host}:{port}; use --env agentgym:{env}@http://{host}:{port}")
    try:
        serve(application, host, port, lifetime_s=lifetime or None)
    except OSError as e:
        raise UserError(f"cannot bind {host}:{port}: {e.strerror}; choose another --port") from None
