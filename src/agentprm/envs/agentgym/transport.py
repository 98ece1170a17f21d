"""Talking to one AgentGym server: target names, one connection pool per URL, retries, the calls.

Retries: a request that never reached the server (connection refused, connect timeout) and a 503 are
always retried with exponential backoff. Requests that do not change state (`reset`, `observation`,
`close`) are also retried after read timeouts and 5xx. A `step` whose outcome is unknown (read timeout,
5xx, dropped connection) raises `OutcomeUnknown` at once: the env recovers by replay on a fresh id (see
`env.py`), never by re-sending it on the same id. After the retries are spent the error is an `EnvError`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from agentprm.envs.agentgym.dialects import FAMILIES, Dialect, dialect_for
from agentprm.envs.base import StepResult
from agentprm.errors import EnvError, UserError

PREFIX = "agentgym:"


@dataclass(frozen=True)
class KnownEnv:
    dialect: str  # family: "id" or "env_idx"
    max_rounds: int  # AgentGym's evaluation budget (distributed_eval_multi_task.sh)


# AgentGym env names whose protocol we know. Others work with an explicit family: agentgym:<name>+id@URL.
KNOWN_ENVS: dict[str, KnownEnv] = {
    "textcraft": KnownEnv("id", 20),
    "babyai": KnownEnv("id", 20),
    "sciworld": KnownEnv("id", 30),
    "webshop": KnownEnv("env_idx", 10),
}
DIALECTS = tuple(FAMILIES)


class ServerReportedError(EnvError):
    """The server answered with `{"error": ...}` (HTTP 200 upstream; 404 for an unknown WebShop id)."""

    def __init__(self, url: str, message: str):
        super().__init__(f"{url}: server error: {message}")
        self.message = message


class OutcomeUnknown(EnvError):
    """A state-changing request failed after it may have reached the server; its id is no longer trusted."""


class ServerUnreachable(EnvError):
    """No connection could be made (after retries)."""


# -- target names ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str  # AgentGym env name, e.g. "textcraft"
    dialect: str  # family: "id" or "env_idx"
    url: str  # base URL without trailing slash

    @property
    def spec_name(self) -> str:
        return f"{PREFIX}{self.name}@{self.url}"

    @property
    def wire(self) -> Dialect:
        return dialect_for(self.name, self.dialect)


def _known_list() -> str:
    return ", ".join(f"{n} ({k.dialect})" for n, k in KNOWN_ENVS.items())


def parse_target(full: str) -> Target:
    """`agentgym:<name>[+<dialect>]@http://HOST:PORT` -> Target, or a one-line UserError naming the fix."""
    body = full[len(PREFIX) :] if full.startswith(PREFIX) else full
    name, at, url = body.partition("@")
    if not at or not name or not url:
        raise UserError(
            f"bad env {full!r}; write agentgym:<name>@http://HOST:PORT, e.g. agentgym:textcraft@http://127.0.0.1:36001"
        )
    name, plus, dialect = name.partition("+")
    if plus:
        if dialect not in DIALECTS:
            raise UserError(f"unknown AgentGym dialect {dialect!r} in {full!r}; choose one of: {', '.join(DIALECTS)}")
    elif name in KNOWN_ENVS:
        dialect = KNOWN_ENVS[name].dialect
    else:
        raise UserError(
            f"unknown AgentGym env {name!r}; known: {_known_list()}; for another env name its dialect, "
            f"e.g. agentgym:{name}+id@{url} (TextCraft/BabyAI style) or agentgym:{name}+env_idx@{url} (WebShop style)"
        )
    if not re.match(r"^https?://[^/\s]+", url):
        raise UserError(f"bad server URL {url!r} in {full!r}; write it as http://HOST:PORT")
    return Target(name, dialect, url.rstrip("/"))


def start_hint(target: Target) -> str:
    port = re.search(r":(\d+)$", target.url)
    p = port.group(1) if port else "PORT"
    return f"start it with `agentprm serve-env --env {target.name} --port {p}` or AgentGym's own launcher (`{target.name} --host 127.0.0.1 --port {p}`)"


# -- one connection pool per base URL per process ---------------------------------------------------------

_CLIENTS: dict[tuple[int, str], httpx.Client] = {}
_CLIENTS_LOCK = threading.Lock()


def http_client(base_url: str) -> httpx.Client:
    """The process's shared client for `base_url` (a new one after fork: pools must not cross processes)."""
    key = (os.getpid(), base_url)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            limits = httpx.Limits(max_connections=128, max_keepalive_connections=64)
            client = _CLIENTS[key] = httpx.Client(base_url=base_url, limits=limits, trust_env=False)
        return client


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # extra attempts after the first
    backoff_s: float = 0.25  # first pause; doubles each attempt
    max_backoff_s: float = 4.0
    timeout_s: float = 60.0  # read timeout of one request (a BabyAI macro step can be slow)
    connect_timeout_s: float = 5.0

    def pause(self, attempt: int) -> None:
        time.sleep(min(self.max_backoff_s, self.backoff_s * 2**attempt))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _error_body(resp: httpx.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return str(body["error"]) if isinstance(body, dict) and "error" in body else None


def call(
    target: Target,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict | None = None,
    safe: bool,
    policy: RetryPolicy,
    send_body: bool = True,
) -> Any:
    """One protocol request with retries; returns the decoded JSON body or raises an `EnvError` subclass.

    `safe`: the request changes no state (or re-sending it is harmless), so read timeouts and 5xx are
    retried too; otherwise they raise `OutcomeUnknown` at once for the caller to recover by replay.
    """
    client = http_client(target.url)
    timeout = httpx.Timeout(policy.timeout_s, connect=policy.connect_timeout_s)
    where = f"{method} {target.url}{path}"
    last = ""
    unreachable = False
    for attempt in range(policy.retries + 1):
        if attempt:
            policy.pause(attempt - 1)
        try:
            kwargs: dict[str, Any] = {"params": params, "timeout": timeout}
            if send_body:
                kwargs["json"] = json
            resp = client.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:  # never reached the server: always safe
            last, unreachable = _describe(e), True
            continue
        except httpx.TransportError as e:  # read timeout, dropped connection: outcome unknown
            if not safe:
                raise OutcomeUnknown(f"{where}: {_describe(e)}") from e
            last, unreachable = _describe(e), False
            continue
        unreachable = False
        if resp.status_code == 503:  # AgentGym's WebShop client retries these: the server was busy
            last = "HTTP 503"
            continue
        if resp.status_code == 422:
            raise EnvError(f"{where}: HTTP 422 (request rejected): {resp.text[:300]}")
        if resp.status_code >= 500:
            if not safe:
                raise OutcomeUnknown(f"{where}: HTTP {resp.status_code}: {resp.text[:200]}")
            last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            continue
        if resp.status_code >= 400:
            message = _error_body(resp)
            if message is not None:  # an answer in the dialect (an unknown WebShop id is a 404)
                raise ServerReportedError(target.url, message)
            raise EnvError(f"{where}: HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            body = resp.json()
        except ValueError:
            raise EnvError(f"{where}: response is not JSON: {resp.text[:200]!r}") from None
        if isinstance(body, dict) and "error" in body:
            raise ServerReportedError(target.url, str(body["error"]))
        return body
    if unreachable:
        raise ServerUnreachable(f"cannot reach the AgentGym server at {target.url} ({last}); {start_hint(target)}")
    raise EnvError(f"{where}: failed after {policy.retries + 1} attempts: {last}")


class Remote:
    """The HTTP calls of one server id's life, in the target's dialect; each returns plain values."""

    def __init__(self, target: Target, policy: RetryPolicy):
        self.t, self.p, self.d = target, policy, target.wire

    def create(self) -> int:
        send_body, body = self.d.create_request()
        answer = call(self.t, "POST", "/create", json=body, safe=True, policy=self.p, send_body=send_body)
        return self.d.parse_create(answer, f"{self.t.url}/create")

    def reset(self, sid: int, index: int) -> str:
        answer = call(self.t, "POST", "/reset", json=self.d.reset_request(sid, index), safe=True, policy=self.p)
        return self.d.parse_reset(answer, f"{self.t.url}/reset")

    def step(self, sid: int, action: str) -> StepResult:
        answer = call(self.t, "POST", "/step", json=self.d.step_request(sid, action), safe=False, policy=self.p)
        return self.d.parse_step(answer, f"{self.t.url}/step")

    def close(self, sid: int) -> None:
        # Upstream WebShop has no /close (a 404, ignored by the caller: its server recycles ids); ours has.
        call(self.t, "POST", "/close", json=self.d.close_request(sid), safe=True, policy=self.p)
