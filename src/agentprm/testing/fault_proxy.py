"""A fault-injecting HTTP proxy on 127.0.0.1, for drills between an AgentGym client and `serve-env`.

Each request is, with probability `rate` (seeded), answered by one fault instead of passed through:

- `drop`: the connection is closed before the request is forwarded (the server never sees it);
- `500`: an HTTP 500 is answered before forwarding (the server never sees it);
- `stall`: the request IS forwarded (the server's state changes), then the answer is held past the
  client's timeout and the connection closed: the client cannot know whether its step happened;
- `reset`: the request is forwarded, and the answer cut mid-body by a TCP reset.

Not in the default set, asked for by name: `garbage`, the request forwarded and answered with a
well-formed HTTP response whose JSON body is cut in half (Content-Length fixed to match), so only a
client that parses and checks the body can tell.

One request per connection (the proxy answers `Connection: close`), so every fault hits exactly one
request. Loopback only: the proxy binds 127.0.0.1 and forwards to a loopback upstream.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

FAULTS = ("drop", "500", "stall", "reset")


def _read_request(conn: socket.socket) -> bytes | None:
    """One HTTP/1.1 request (head + Content-Length body), or None if the client went away."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body


class FaultProxy:
    """`with FaultProxy(upstream_url, rate=0.1, seed=0) as proxy:` then point the client at `proxy.url`."""

    def __init__(
        self, upstream: str, *, rate: float, seed: int = 0, faults: tuple[str, ...] = FAULTS, stall_s: float = 1.0
    ):
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("the fault proxy forwards to loopback only")
        self.upstream = (parts.hostname, parts.port or 80)
        self.rate, self.faults, self.stall_s = rate, faults, stall_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()  # "ok" and each fault
        self.paths: Counter[str] = Counter()  # requests seen per path
        self._sock: socket.socket | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        assert self._sock is not None
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> FaultProxy:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _choose(self, path: str) -> str:
        with self._lock:
            self.paths[path] += 1
            fault = self._rng.choice(self.faults) if self._rng.random() < self.rate else "ok"
            self.counts[fault] += 1
            return fault

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(self.upstream, timeout=30) as up:
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            up.sendall(request)
            chunks = []
            while chunk := up.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = _read_request(conn)
            if request is None:
                return
            path = request.split(b" ", 2)[1].split(b"?")[0].decode()
            fault = self._choose(path)
            if fault == "drop":
                return
            if fault == "500":
                body = b'{"detail": "injected 500"}'
                conn.sendall(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )
                return
            answer = self._forward(request)
            if fault == "stall":
                time.sleep(self.stall_s)
                return
            if fault == "garbage":
                head, _, body = answer.partition(b"\r\n\r\n")
                body = body[: len(body) // 2]
                lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"content-length:")]
                conn.sendall(b"\r\n".join([*lines, b"Content-Length: %d" % len(body)]) + b"\r\n\r\n" + body)
                return
            if fault == "reset":
                head, _, body = answer.partition(b"\r\n\r\n")
                conn.sendall(head + b"\r\n\r\n" + body[: len(body) // 2])
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
                return
            conn.sendall(answer)
        except OSError:
            pass
        finally:
            conn.close()
