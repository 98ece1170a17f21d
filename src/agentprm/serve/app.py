"""Our in-process envs behind AgentGym's HTTP endpoints and response shapes (`../shared/envs.md` §5).

`create_app(factory, protocol)` serves any `Env` so that AgentGym's own clients (and `AgentGymEnv`)
drive it unchanged. `protocol` names the AgentGym server whose `Dialect` (`agentprm.envs.agentgym.dialects`,
shared with our client, which documents every shape) we answer in: textcraft, babyai or webshop.
`data_idx`/`session_id` i means our task `<name>_i`.

Request bodies over `max_body_bytes` (Content-Length) get HTTP 413. `GET /stats` (not an AgentGym
endpoint) counts sessions open, created, closed and evicted. Live ids are bounded (`max_envs`): creating one more first drops ids idle for `idle_seconds`, then the
least recently used. Thread-safe: a table lock, and a lock per env so one id is stepped by one request at
a time while different ids run in parallel (FastAPI runs these sync handlers in its thread pool).
"""

# No `from __future__ import annotations`: FastAPI reads the request models from annotations that name
# the dialect's classes, which only resolve when evaluated at definition time.

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from agentprm.envs.agentgym.dialects import SERVERS, WEBSHOP_MAX_ID, Dialect, State
from agentprm.envs.base import Env
from agentprm.errors import EnvError

PROTOCOLS = tuple(SERVERS)


@dataclass
class _Live:
    env: Env
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    observation: str = ""
    reward: float = 0.0
    score: float = 0.0
    done: bool = False
    reset_done: bool = False

    def state(self) -> State:
        return State(self.observation, self.reward, self.score, self.done)


class EnvTable:
    """Live env ids: bounded, idle ones evicted, thread-safe."""

    def __init__(self, factory: Callable[[], Env], *, max_envs: int, idle_seconds: float, random_ids: bool):
        self.factory = factory
        self.max_envs = max_envs
        self.idle_seconds = idle_seconds
        self.random_ids = random_ids
        self._envs: OrderedDict[int, _Live] = OrderedDict()  # least recently used first
        self._next = 0
        self._lock = threading.Lock()
        self._rng = random.Random()
        self.created = self.closed = self.evicted = 0  # for GET /stats: created - closed - evicted = open

    def create(self) -> tuple[int, _Live]:
        live = _Live(self.factory(), time.monotonic())  # built outside the lock: envs may be slow to build
        with self._lock:
            now = time.monotonic()
            for sid in [s for s, e in self._envs.items() if now - e.last_used > self.idle_seconds]:
                self._drop(sid)
            while len(self._envs) >= self.max_envs:
                self._drop(next(iter(self._envs)))
            if self.random_ids:
                sid = self._rng.randint(0, WEBSHOP_MAX_ID)
                while sid in self._envs:
                    sid = self._rng.randint(0, WEBSHOP_MAX_ID)
            else:
                sid, self._next = self._next, self._next + 1
            self._envs[sid] = live
            self.created += 1
            return sid, live

    def _drop(self, sid: int) -> None:
        live = self._envs.pop(sid)
        self.evicted += 1
        try:
            live.env.close()
        except Exception:  # an env failing to close must not stop the server
            pass

    def get(self, sid: int) -> _Live | None:
        with self._lock:
            live = self._envs.get(sid)
            if live is not None:
                live.last_used = time.monotonic()
                self._envs.move_to_end(sid)
            return live

    def close(self, sid: int) -> bool:
        with self._lock:
            live = self._envs.pop(sid, None)
            if live is not None:
                self.closed += 1
        if live is None:
            return False
        live.env.close()
        return True

    def ids(self) -> list[int]:
        with self._lock:
            return list(self._envs)

    def __len__(self) -> int:
        return len(self._envs)


def create_app(
    factory: Callable[[], Env],
    protocol: str,
    *,
    max_envs: int = 1024,
    idle_seconds: float = 3600.0,
    max_body_bytes: int = 1 << 20,
) -> FastAPI:
    """A FastAPI app serving envs made by `factory` with the endpoints and shapes of AgentGym's `protocol` server."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    d: Dialect = SERVERS[protocol]
    probe = factory()  # the name for task ids
    name = probe.name
    probe.close()
    table = EnvTable(factory, max_envs=max_envs, idle_seconds=idle_seconds, random_ids=d.random_ids)
    app = FastAPI(title=f"agentprm {name} env server ({protocol} protocol)")
    app.state.table = table

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Any]) -> Any:
        # An action is a line of text: a body past max_body_bytes is a client bug or abuse, not an action.
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > max_body_bytes):
            return JSONResponse({"error": f"request body over {max_body_bytes} bytes"}, status_code=413)
        return await call_next(request)

    train_ids: list[str] = []  # for WebShop's session_id=null (a random goal), read on first use

    def with_status(answer: Any) -> Any:
        """An error answer with the dialect's status for bad ids (HTTP 200 upstream except WebShop's, see dialects)."""
        if d.invalid_status != 200 and isinstance(answer, dict) and "error" in answer:
            return JSONResponse(answer, status_code=d.invalid_status)
        return answer

    def invalid(sid: int) -> Any:
        return with_status(d.invalid(sid))

    def do_reset(live: _Live, index: int | None) -> str:
        if index is None:  # upstream WebShop: a random goal
            if not train_ids:
                train_ids.extend(_train_ids(factory))
            index = int(random.choice(train_ids).rsplit("_", 1)[1])
        obs = live.env.reset(f"{name}_{index}")
        live.observation, live.reward, live.score, live.done, live.reset_done = obs, 0.0, 0.0, False, True
        return obs

    def do_step(sid: int, live: _Live, action: str) -> dict[str, Any] | None:
        """Step under the env's lock; returns an error body or None (state updated on `live`)."""
        if not live.reset_done:
            return d.not_reset(sid)
        if live.done and d.finished_is_error:
            return d.finished(sid)
        res = live.env.step(action)
        live.observation, live.reward, live.done = res.observation, res.reward, res.done
        live.score += res.reward
        return None

    def guarded(fn: Callable[[], Any]) -> Any:
        # AgentGym's servers catch everything and answer {"error": str(e)} with HTTP 200.
        try:
            return fn()
        except EnvError as e:
            return {"error": str(e)}
        except Exception as e:  # noqa: BLE001 - mirrored upstream behaviour; the client records env_error
            return {"error": f"{type(e).__name__}: {e}"}

    def query_id(request: Request) -> int:
        raw = request.query_params.get(d.id_key)
        try:
            return int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise RequestValidationError(
                [{"type": "int_parsing", "loc": ["query", d.id_key], "msg": "an integer is required", "input": raw}]
            ) from None

    @app.get("/")
    def hello() -> str:
        return d.hello(name)

    @app.get("/stats")
    def stats() -> dict[str, int]:  # ours, not AgentGym's: lets a load test see leaked sessions
        return {"open": len(table), "created": table.created, "closed": table.closed, "evicted": table.evicted}

    if d.create_body is not None:  # TextCraft: a JSON body is required (no body is FastAPI's 422)

        @app.post("/create")
        def create(body: d.create_body = Body(...)) -> Any:  # type: ignore[name-defined]
            if getattr(body, "commands", None) is not None or getattr(body, "goal", None) is not None:
                return {
                    "error": "custom commands/goal are not supported by agentprm's server; use /reset with data_idx"
                }
            return guarded(create_one)

    else:

        @app.post("/create")
        def create() -> Any:  # type: ignore[misc]  # the other dialects' /create: no body
            return guarded(create_one)

    def create_one() -> Any:
        sid, live = table.create()
        if not d.reset_on_create:
            return d.create_answer(sid, None)
        with live.lock:
            do_reset(live, 0)
            return d.create_answer(sid, live.state())

    @app.post("/reset")
    def reset(body: d.reset_body) -> Any:  # type: ignore[name-defined]
        sid = getattr(body, d.id_key)
        live = table.get(sid)
        if live is None:
            return invalid(sid)

        def run() -> Any:
            do_reset(live, getattr(body, d.index_key))
            return d.reset_answer(sid, live.state())

        with live.lock:  # a task index the env does not know is a bad id too
            return with_status(guarded(run))

    @app.post("/step")
    def step(body: d.step_body) -> Any:  # type: ignore[name-defined]
        sid = getattr(body, d.id_key)
        live = table.get(sid)
        if live is None:
            return invalid(sid)

        def run() -> Any:
            return do_step(sid, live, body.action) or d.step_answer(sid, live.state())

        with live.lock:
            return guarded(run)

    def read(request: Request, answer: Callable[[int, State], Any]) -> Any:
        sid = query_id(request)
        live = table.get(sid)
        return invalid(sid) if live is None else answer(sid, live.state())

    @app.get("/observation")
    def observation(request: Request) -> Any:
        return read(request, d.observation_answer)

    if "detail" in d.extra_gets:

        @app.get("/detail")
        def detail(request: Request) -> Any:
            return read(request, d.detail_answer)

    if "list_envs" in d.extra_gets:

        @app.get("/list_envs")
        def list_envs() -> list[int]:
            return table.ids()

    @app.post("/close")
    def close(body: d.close_body) -> bool:  # type: ignore[name-defined]
        return table.close(getattr(body, d.id_key))

    return app


def _train_ids(factory: Callable[[], Env]) -> list[str]:
    env = factory()
    try:
        return env.task_ids("train")
    finally:
        env.close()


def default_protocol(env_name: str) -> str | None:
    return env_name if env_name in PROTOCOLS else None
