"""Our in-process envs behind AgentGym's HTTP endpoints and response shapes (`../shared/envs.md` §5).

`create_app(factory, protocol)` serves any `Env` so that AgentGym's own clients (and `AgentGymEnv`)
drive it unchanged. `protocol` picks the AgentGym server whose shapes we copy:

- `textcraft` (`id` dialect): `POST /create` needs a JSON body (`{}`; no body is FastAPI's 422) and
  answers `{"id", "observation", "done", "reward"}` for the task `<name>_0`; `POST /reset {"id", "data_idx"}`
  -> `{"id", "observation", "done", "reward"}`; `POST /step {"id", "action"}` -> `{"observation",
  "reward", "done"}`; `GET /observation?id=` -> a bare string; `GET /detail?id=` -> `{"observation",
  "done", "reward", "deleted"}`.
- `babyai` (`id` dialect): `POST /create` (no body needed) -> `{"id"}`; `/reset` -> `{"observation",
  "reward", "score", "deleted", "done"}`; `/step` -> `{"observation", "reward", "score", "done"}`;
  `GET /observation?id=` -> a dict like reset's. `score` is the summed reward.
- `webshop` (`env_idx` dialect): `POST /create` -> a bare int drawn from AgentGym's range;
  `POST /reset {"env_idx", "session_id"}` -> `[observation, null]`; `POST /step {"env_idx", "action"}`
  -> `{"state", "reward", "done", "info": null}`; `GET /observation?env_idx=` -> string;
  `GET /list_envs` -> ids; no `/close` (as upstream).

Common: `GET /` answers a string; `POST /close {"id"}` -> `true`/`false` (id dialects); errors are
HTTP 200 `{"error": "..."}` with AgentGym's texts ("The id N is not valid.", "The task with environment N
has finished."), wrong types FastAPI's 422. `data_idx`/`session_id` i means our task `<name>_i`.

Live ids are bounded (`max_envs`): creating one more first drops ids idle for `idle_seconds`, then the
least recently used. Thread-safe: a table lock, and a lock per env so one id is stepped by one request at
a time while different ids run in parallel (FastAPI runs these sync handlers in its thread pool).
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from agentprm.envs.base import Env
from agentprm.errors import EnvError

PROTOCOLS = ("textcraft", "babyai", "webshop")
WEBSHOP_MAX_ID = 48950076  # AgentGym's WebShop server draws ids with random.randint(0, 48950076)


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
        self.evicted = 0

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
        if live is None:
            return False
        live.env.close()
        return True

    def ids(self) -> list[int]:
        with self._lock:
            return list(self._envs)

    def __len__(self) -> int:
        return len(self._envs)


class _Id(BaseModel):
    id: int


class _IdReset(BaseModel):
    id: int
    data_idx: int = 0


class _IdStep(BaseModel):
    id: int
    action: str


class _TextCraftCreate(BaseModel):
    commands: str | None = None
    goal: str | None = None


class _IdxReset(BaseModel):
    env_idx: int
    session_id: int | None = None


class _IdxStep(BaseModel):
    env_idx: int
    action: str


def _invalid(sid: int) -> dict[str, str]:
    return {"error": f"The id {sid} is not valid."}


def create_app(
    factory: Callable[[], Env],
    protocol: str,
    *,
    max_envs: int = 1024,
    idle_seconds: float = 3600.0,
) -> FastAPI:
    """A FastAPI app serving envs made by `factory` with the endpoints and shapes of AgentGym's `protocol` server."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    probe = factory()  # the name for task ids and the splits for session_id=null
    name = probe.name
    probe.close()
    table = EnvTable(factory, max_envs=max_envs, idle_seconds=idle_seconds, random_ids=protocol == "webshop")
    app = FastAPI(title=f"agentprm {name} env server ({protocol} protocol)")
    app.state.table = table

    def do_reset(live: _Live, index: int) -> str:
        obs = live.env.reset(f"{name}_{index}")
        live.observation, live.reward, live.score, live.done, live.reset_done = obs, 0.0, 0.0, False, True
        return obs

    def do_step(sid: int, live: _Live, action: str) -> dict[str, Any] | None:
        """Step under the env's lock; returns an error body or None (state updated on `live`)."""
        if not live.reset_done:
            return {"error": f"The environment {sid} has not been reset."}
        if live.done and protocol != "webshop":
            return {"error": f"The task with environment {sid} has finished."}
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

    if protocol == "webshop":

        @app.get("/")
        def hello() -> str:
            return "ok"

        @app.get("/list_envs")
        def list_envs() -> list[int]:
            return table.ids()

        @app.post("/create")
        def create() -> Any:
            return guarded(lambda: table.create()[0])

        @app.post("/reset")
        def reset(body: _IdxReset) -> Any:
            live = table.get(body.env_idx)
            if live is None:
                return _invalid(body.env_idx)
            index = body.session_id
            if index is None:  # upstream: a random goal
                index = int(probe_ids[random.randrange(len(probe_ids))].rsplit("_", 1)[1])
            with live.lock:
                return guarded(lambda: [do_reset(live, index), None])

        @app.post("/step")
        def step(body: _IdxStep) -> Any:
            live = table.get(body.env_idx)
            if live is None:
                return _invalid(body.env_idx)

            def run() -> Any:
                err = do_step(body.env_idx, live, body.action)
                return err or {"state": live.observation, "reward": live.reward, "done": live.done, "info": None}

            with live.lock:
                return guarded(run)

        @app.get("/observation")
        def observation(env_idx: int) -> Any:
            live = table.get(env_idx)
            return _invalid(env_idx) if live is None else live.observation

        probe_ids = _train_ids(factory)
        return app

    # -- id dialect (TextCraft, BabyAI) ------------------------------------------------------------------------
    @app.get("/")
    def hello() -> str:
        return f"This is environment {name}."

    if protocol == "textcraft":

        @app.post("/create")
        def create(body: _TextCraftCreate) -> Any:
            if body.commands is not None or body.goal is not None:
                return {"error": "custom commands/goal are not supported by agentprm's server; use /reset with data_idx"}

            def run() -> Any:
                sid, live = table.create()
                with live.lock:
                    do_reset(live, 0)
                    return {"id": sid, "observation": live.observation, "done": False, "reward": 0.0}

            return guarded(run)

    else:

        @app.post("/create")
        def create() -> Any:
            return guarded(lambda: {"id": table.create()[0]})

    def reset_body(sid: int, live: _Live) -> dict[str, Any]:
        if protocol == "textcraft":
            return {"id": sid, "observation": live.observation, "done": live.done, "reward": live.reward}
        return {"observation": live.observation, "reward": live.reward, "score": live.score, "deleted": False, "done": live.done}

    @app.post("/reset")
    def reset(body: _IdReset) -> Any:
        live = table.get(body.id)
        if live is None:
            return _invalid(body.id)

        def run() -> Any:
            do_reset(live, body.data_idx)
            return reset_body(body.id, live)

        with live.lock:
            return guarded(run)

    @app.post("/step")
    def step(body: _IdStep) -> Any:
        live = table.get(body.id)
        if live is None:
            return _invalid(body.id)

        def run() -> Any:
            err = do_step(body.id, live, body.action)
            if err:
                return err
            out: dict[str, Any] = {"observation": live.observation, "reward": live.reward}
            if protocol == "babyai":
                out["score"] = live.score
            out["done"] = live.done
            return out

        with live.lock:
            return guarded(run)

    @app.get("/observation")
    def observation(id: int) -> Any:  # noqa: A002 - AgentGym's query parameter name
        live = table.get(id)
        if live is None:
            return _invalid(id)
        return live.observation if protocol == "textcraft" else reset_body(id, live)

    if protocol == "textcraft":

        @app.get("/detail")
        def detail(id: int) -> Any:  # noqa: A002
            live = table.get(id)
            if live is None:
                return _invalid(id)
            return {"observation": live.observation, "done": live.done, "reward": live.reward, "deleted": False}

    @app.post("/close")
    def close(body: _Id) -> bool:
        return table.close(body.id)

    return app


def _train_ids(factory: Callable[[], Env]) -> list[str]:
    env = factory()
    try:
        return env.task_ids("train")
    finally:
        env.close()


def default_protocol(env_name: str) -> str | None:
    return env_name if env_name in PROTOCOLS else None
