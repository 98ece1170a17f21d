"""Running an app with uvicorn: in the foreground (`serve-env`) or in a thread that stops by itself (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

LOOPBACK = "127.0.0.1"


def _server(app: FastAPI, lifetime_s: float | None) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30)
    server = uvicorn.Server(config)
    if lifetime_s:
        timer = threading.Timer(lifetime_s, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    return server


def bind(host: str, port: int) -> socket.socket:
    # proto must be IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only then, and
    # without it every response waits ~40 ms for a delayed ACK (measured: 45 ms vs 1 ms a request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def serve(app: FastAPI, host: str = LOOPBACK, port: int = 36001, lifetime_s: float | None = None) -> None:
    """Serve until interrupted (or for `lifetime_s` seconds)."""
    sock = bind(host, port)
    _server(app, lifetime_s).run(sockets=[sock])


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, lifetime_s: float = 600.0) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 on a free port in a daemon thread; yields the base URL.

    The server stops on exit from the block, and in any case after `lifetime_s` seconds.
    """
    sock = bind(LOOPBACK, 0)
    port = sock.getsockname()[1]
    server = _server(app, lifetime_s)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        raise RuntimeError("the test server did not start")
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
