"""An `Env` backed by an AgentGym env server: `--env agentgym:<name>@http://HOST:PORT`.

AgentGym serves each env over HTTP (FastAPI). Two dialects exist (`../shared/envs.md` §5):

- `id` (TextCraft, BabyAI, SciWorld and the like): `POST /create {}` -> `{"id": N, ...}`,
  `POST /reset {"id", "data_idx"}` -> `{"observation", ...}`, `POST /step {"id", "action"}` ->
  `{"observation", "reward", "done", ...}` (BabyAI adds `score`, kept in `info`), `POST /close {"id"}`.
- `env_idx` (WebShop): `POST /create` (no body) -> a bare int, `POST /reset {"env_idx", "session_id"}`
  -> `[observation, null]`, `POST /step {"env_idx", "action"}` -> `{"state", "reward", "done", "info"}`;
  no `/close`.

Both answer errors as HTTP 200 with `{"error": "..."}` and bad types as 422; every such failure becomes
`EnvError`, which rollouts record as `env_error` (never a silent reward 0). Task ids stay AgentGym's
`<name>_<i>`; `i` is sent as `data_idx` / `session_id`.

Retries: a request that never reached the server (connection refused, connect timeout) and a 503 are
always retried with exponential backoff. Requests that do not change state (`reset`, `observation`,
`close`) are also retried after read timeouts and 5xx. A `step` whose outcome is unknown (read timeout,
5xx, dropped connection, or an id the server no longer knows) is never re-sent on the same id: the env
takes a fresh server id, resets it and replays the action prefix (checking every observation), then
sends the step there. After the retries are spent the error is an `EnvError`.

`clone()` is replay-based and copy-on-write: a clone shares its parent's server id until one of them
steps; the other then gets a server id at its own state from the per-process prefix cache (idle server
ids parked by `close()`, matched by longest action prefix of the same task, else any idle id reset), or
a new one, and replays only the missing suffix. Replayed observations, rewards and done flags must equal
the recorded ones, else `NondeterministicServerError`.

One `httpx.Client` (one connection pool) per base URL per process is shared by every env instance, so
batched rollouts simply hold many `AgentGymEnv`s (one server id each).
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx

from agentprm.envs.base import REGISTRY, EnvSpec, StepResult, check_split, parse_react_action
from agentprm.errors import EnvError, UserError

PREFIX = "agentgym:"


@dataclass(frozen=True)
class KnownEnv:
    dialect: str  # "id" or "env_idx"
    max_rounds: int  # AgentGym's evaluation budget (distributed_eval_multi_task.sh)


# AgentGym env names whose protocol we know. Others work with an explicit dialect: agentgym:<name>+id@URL.
KNOWN_ENVS: dict[str, KnownEnv] = {
    "textcraft": KnownEnv("id", 20),
    "babyai": KnownEnv("id", 20),
    "sciworld": KnownEnv("id", 30),
    "webshop": KnownEnv("env_idx", 10),
}
DIALECTS = ("id", "env_idx")

# Attributes of our own env that hold static data, not episode state; read through by `AgentGymEnv`.
STATIC_LOCAL_ATTRS = frozenset({"book"})

GENERIC_SYSTEM_PROMPT = (
    "You are an agent acting in a text environment. Each turn you see an observation; answer with your "
    "reasoning and exactly one action in the format\n\nThought:\n<your reasoning>\n\nAction:\n<the action>"
)


class NondeterministicServerError(EnvError):
    """Replaying a recorded action prefix on a fresh server id gave a different observation."""


class ServerReportedError(EnvError):
    """The server answered HTTP 200 with `{"error": ...}`."""

    def __init__(self, url: str, message: str):
        super().__init__(f"{url}: server error: {message}")
        self.message = message


class _OutcomeUnknown(EnvError):
    """A state-changing request failed after it may have reached the server; its id is no longer trusted."""


class ServerUnreachable(EnvError):
    """No connection could be made (after retries)."""


# -- target names ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str  # AgentGym env name, e.g. "textcraft"
    dialect: str
    url: str  # base URL without trailing slash

    @property
    def spec_name(self) -> str:
        return f"{PREFIX}{self.name}@{self.url}"


def _known_list() -> str:
    return ", ".join(f"{n} ({k.dialect})" for n, k in KNOWN_ENVS.items())


def parse_target(full: str) -> Target:
    """`agentgym:<name>[+<dialect>]@http://HOST:PORT` -> Target, or a one-line UserError naming the fix."""
    body = full[len(PREFIX) :] if full.startswith(PREFIX) else full
    name, at, url = body.partition("@")
    if not at or not name or not url:
        raise UserError(f"bad env {full!r}; write agentgym:<name>@http://HOST:PORT, e.g. agentgym:textcraft@http://127.0.0.1:36001")
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


def call(
    target: Target, method: str, path: str, *, json: Any = None, params: dict | None = None,
    safe: bool, policy: RetryPolicy, send_body: bool = True,
) -> Any:
    """One protocol request with retries; returns the decoded JSON body or raises an `EnvError` subclass.

    `safe`: the request changes no state (or re-sending it is harmless), so read timeouts and 5xx are
    retried too; otherwise they raise `_OutcomeUnknown` at once for the caller to recover by replay.
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
                raise _OutcomeUnknown(f"{where}: {_describe(e)}") from e
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
                raise _OutcomeUnknown(f"{where}: HTTP {resp.status_code}: {resp.text[:200]}")
            last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            continue
        if resp.status_code >= 400:
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


def start_hint(target: Target) -> str:
    port = re.search(r":(\d+)$", target.url)
    p = port.group(1) if port else "PORT"
    return f"start it with `agentprm serve-env --env {target.name} --port {p}` or AgentGym's own launcher (`{target.name} --host 127.0.0.1 --port {p}`)"


# -- the two dialects ---------------------------------------------------------------------------------------


def _field(body: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(body, dict) or key not in body or not isinstance(body[key], kind):
        raise EnvError(f"{where}: unexpected response {str(body)[:200]!r} (no {kind} field {key!r})")
    return body[key]


class _Protocol:
    """The HTTP calls of one dialect; each returns plain values."""

    def __init__(self, target: Target, policy: RetryPolicy):
        self.t, self.p = target, policy

    def create(self) -> int:
        if self.t.dialect == "id":
            # TextCraft needs a JSON body ({} is fine; no body is a 422); BabyAI ignores it.
            body = call(self.t, "POST", "/create", json={}, safe=True, policy=self.p)
            return int(_field(body, "id", int, f"{self.t.url}/create"))
        body = call(self.t, "POST", "/create", safe=True, policy=self.p, send_body=False)
        if isinstance(body, bool) or not isinstance(body, int):
            raise EnvError(f"{self.t.url}/create: expected a bare int env_idx, got {str(body)[:200]!r}")
        return body

    def reset(self, sid: int, index: int) -> str:
        if self.t.dialect == "id":
            body = call(self.t, "POST", "/reset", json={"id": sid, "data_idx": index}, safe=True, policy=self.p)
            return _field(body, "observation", str, f"{self.t.url}/reset")
        body = call(self.t, "POST", "/reset", json={"env_idx": sid, "session_id": index}, safe=True, policy=self.p)
        obs = body[0] if isinstance(body, list) and body else body
        if not isinstance(obs, str):
            raise EnvError(f"{self.t.url}/reset: expected [observation, null], got {str(body)[:200]!r}")
        return obs

    def step(self, sid: int, action: str) -> StepResult:
        where = f"{self.t.url}/step"
        if self.t.dialect == "id":
            body = call(self.t, "POST", "/step", json={"id": sid, "action": action}, safe=False, policy=self.p)
            obs = _field(body, "observation", str, where)
        else:
            body = call(self.t, "POST", "/step", json={"env_idx": sid, "action": action}, safe=False, policy=self.p)
            obs = _field(body, "state", str, where)
        reward = _field(body, "reward", (int, float), where)
        done = _field(body, "done", (bool, int), where)
        # BabyAI's `score` is the summed reward: derivable, and left out so trajectories match in-process ones.
        info = {k: v for k, v in body.items() if k not in ("observation", "state", "reward", "done", "score") and v is not None}
        return StepResult(obs, float(reward), bool(done), info)

    def close(self, sid: int) -> None:
        if self.t.dialect == "id":  # WebShop has no /close; its server recycles ids itself
            call(self.t, "POST", "/close", json={"id": sid}, safe=True, policy=self.p)


_INVALID_ID = re.compile(r"id \S+ is not valid|not valid|unknown (env|id)", re.IGNORECASE)


# -- server ids and the per-process prefix cache --------------------------------------------------------------


@dataclass(eq=False)
class _Handle:
    """One live server env id and the state it is in (task + actions sent since reset)."""

    target: Target
    sid: int
    task_id: str | None = None
    prefix: tuple[str, ...] = ()
    users: int = 0  # env objects whose logical state this handle currently serves (copy-on-write)
    dead: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class _IdlePool:
    """Idle server ids parked by closed/collected envs, reused by longest matching action prefix.

    Bounded (LRU); an evicted id is closed on the server later, from a normal call, never from a finalizer.
    """

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._idle: OrderedDict[int, _Handle] = OrderedDict()  # key: id(handle)
        self._to_close: list[_Handle] = []
        self._lock = threading.Lock()

    def park(self, h: _Handle) -> None:
        with self._lock:
            if h.dead or self.capacity <= 0:
                self._to_close.append(h)
                return
            self._idle[id(h)] = h
            while len(self._idle) > self.capacity:
                self._to_close.append(self._idle.popitem(last=False)[1])

    def take(self, target: Target, task_id: str, prefix: tuple[str, ...]) -> _Handle | None:
        """The idle handle of `target` at the longest prefix of (task_id, prefix), else any idle one."""
        with self._lock:
            best, best_len = None, -1
            for h in self._idle.values():
                if h.target != target:
                    continue
                if h.task_id == task_id and len(h.prefix) <= len(prefix) and prefix[: len(h.prefix)] == h.prefix:
                    if len(h.prefix) > best_len:
                        best, best_len = h, len(h.prefix)
                elif best is None:
                    best = h  # reusable after a reset
            if best is not None:
                del self._idle[id(best)]
            return best

    def drain_closes(self) -> list[_Handle]:
        with self._lock:
            out, self._to_close = self._to_close, []
            return out

    def clear(self) -> list[_Handle]:
        with self._lock:
            out = list(self._idle.values()) + self._to_close
            self._idle.clear()
            self._to_close = []
            return out


POOL = _IdlePool()


def _release(slot: _Slot) -> None:
    """Finalizer-safe: drop this env's claim on its handle; park it when nobody else uses it. No I/O."""
    h, slot.handle = slot.handle, None
    if h is None:
        return
    with h.lock:
        h.users -= 1
        free = h.users <= 0
    if free:
        POOL.park(h)


def _close_on_server(handles: list[_Handle], policy: RetryPolicy) -> None:
    quick = RetryPolicy(retries=0, timeout_s=min(5.0, policy.timeout_s), connect_timeout_s=1.0)
    for h in handles:
        try:
            _Protocol(h.target, quick).close(h.sid)
        except EnvError:
            pass  # best effort: the server evicts idle ids (ours does) or recycles them (WebShop's)


@atexit.register
def _close_parked() -> None:
    _close_on_server(POOL.clear(), RetryPolicy())


@dataclass
class _Slot:
    handle: _Handle | None = None


# -- what we know locally about an AgentGym env -----------------------------------------------------------------


@lru_cache(maxsize=None)
def local_env(name: str) -> Any | None:
    """Our own in-process env of that name (for system prompt, parse_action, splits), or None."""
    spec = REGISTRY.get(name)
    if spec is None:
        return None
    try:
        return spec.make()
    except ImportError:  # registered but not built on this branch yet
        return None


# -- the env -----------------------------------------------------------------------------------------------------


class AgentGymEnv:
    """An AgentGym env server seen through the `Env` protocol (see the module docstring)."""

    def __init__(self, target: Target | str, *, policy: RetryPolicy | None = None, check_server: bool = True):
        self.target = parse_target(target) if isinstance(target, str) else target
        self.policy = policy or RetryPolicy()
        self.name = self.target.name
        local = local_env(self.name)
        known = KNOWN_ENVS.get(self.name)
        self._local = local
        self.system_prompt = local.system_prompt if local is not None else GENERIC_SYSTEM_PROMPT
        self.max_rounds = local.max_rounds if local is not None else (known.max_rounds if known else 20)
        self._proto = _Protocol(self.target, self.policy)
        self.task_id: str | None = None
        self.first_observation = ""
        self.history: list[tuple[str, StepResult]] = []  # (action, result) since reset
        self._slot = _Slot()
        weakref.finalize(self, _release, self._slot)
        if check_server:
            _check_reachable(self.target, self.policy)

    # -- tasks --------------------------------------------------------------------------------------------------
    def task_ids(self, split: str, n: int | None = None) -> list[str]:
        check_split(split)
        if self._local is None:
            raise UserError(
                f"agentprm has no {self.name!r} env of its own to take the {split} split from; "
                f"give task ids explicitly (AgentGym's form {self.name}_<i>)"
            )
        return self._local.task_ids(split, n)

    def index_of(self, task_id: str) -> int:
        m = re.fullmatch(rf"{re.escape(self.name)}_(\d+)", task_id)
        if not m:
            raise UserError(f"task id {task_id!r} is not AgentGym's form {self.name}_<i> (e.g. {self.name}_12)")
        return int(m.group(1))

    # -- episode ------------------------------------------------------------------------------------------------
    def reset(self, task_id: str) -> str:
        index = self.index_of(task_id)
        self.task_id, self.history = task_id, []
        self.first_observation = ""
        self.first_observation = self._run(lambda h: h, reset_index=index)[1]
        return self.first_observation

    def step(self, action: str) -> StepResult:
        if self.task_id is None:
            raise EnvError("step() before reset()")
        result, _ = self._run(lambda h: self._proto.step(h.sid, action), action=action)
        self.history.append((action, result))
        return result

    def _run(self, op, *, action: str | None = None, reset_index: int | None = None):
        """Get a handle at this env's state and apply `op` there; recover lost ids by replay (bounded)."""
        last: EnvError | None = None
        failures = races = 0
        while failures <= self.policy.retries and races < 1000:
            h = None
            try:
                h, obs = self._materialize(fresh_reset=reset_index is not None)
                with h.lock:
                    if h.dead or h.task_id != self.task_id or h.prefix != self._prefix():
                        races += 1  # a clone sharing this id stepped first: get our own
                        continue
                    out = op(h)
                    if action is not None:
                        h.prefix = (*h.prefix, action)
                    return out, obs
            except _OutcomeUnknown as e:  # (unreachable servers were already retried inside `call`)
                last = e
            except ServerReportedError as e:
                if not _INVALID_ID.search(e.message):
                    raise
                last = e  # the server lost our id (evicted, restarted): replay on a new one
            self._drop_handle(h if h is not None else self._slot.handle)
            if failures < self.policy.retries:
                self.policy.pause(failures)
            failures += 1
        if isinstance(last, _OutcomeUnknown):
            raise EnvError(f"{last} (gave up after {failures} attempts)") from last
        raise last if last is not None else EnvError("could not get a server id in a consistent state")

    def _prefix(self) -> tuple[str, ...]:
        return tuple(a for a, _ in self.history)

    def _drop_handle(self, h: _Handle | None) -> None:
        if h is None:
            return
        h.dead = True
        if self._slot.handle is h:
            _release(self._slot)

    def _materialize(self, fresh_reset: bool) -> tuple[_Handle, str]:
        """A handle in this env's state, with the reset observation where a reset happened."""
        _close_on_server(POOL.drain_closes(), self.policy)
        prefix = self._prefix()
        h = self._slot.handle
        if not fresh_reset and h is not None and not h.dead and h.task_id == self.task_id and h.prefix == prefix:
            return h, self.first_observation
        if h is not None and (fresh_reset or h.users > 1 or h.dead):
            _release(self._slot)  # shared or stale: leave it to the others / the pool
            h = None
        if h is None:
            h = POOL.take(self.target, self.task_id, prefix) if not fresh_reset else POOL.take(self.target, "", ())
            if h is None:
                h = _Handle(self.target, self._proto.create())
            h.users = 1
            self._slot.handle = h
        obs = self.first_observation
        if fresh_reset or h.task_id != self.task_id or prefix[: len(h.prefix)] != h.prefix or len(h.prefix) > len(prefix):
            obs = self._proto.reset(h.sid, self.index_of(self.task_id))
            h.task_id, h.prefix = self.task_id, ()
            if not fresh_reset:
                self._check_replay(h, -1, "(reset)", obs, self.first_observation)
        for k in range(len(h.prefix), len(prefix)):
            action, want = self.history[k]
            try:
                got = self._proto.step(h.sid, action)
            except _OutcomeUnknown:
                h.dead = True
                raise
            h.prefix = (*h.prefix, action)
            self._check_replay(h, k, action, got, want)
        return h, obs

    def _check_replay(self, h: _Handle, k: int, action: str, got: Any, want: Any) -> None:
        if isinstance(got, StepResult):
            same = (got.observation, got.reward, got.done) == (want.observation, want.reward, want.done)
            got_s, want_s = f"{got.observation!r} r={got.reward} done={got.done}", f"{want.observation!r} r={want.reward} done={want.done}"
        else:
            same, got_s, want_s = got == want, repr(got), repr(want)
        if not same:
            self._drop_handle(h)
            raise NondeterministicServerError(
                f"the AgentGym server at {self.target.url} is not deterministic: replaying {self.task_id} "
                f"step {k + 1} (action {action!r}) gave {got_s[:300]} but the recorded one was {want_s[:300]}; "
                "clone() and recovery need a server that replays a task identically"
            )

    def clone(self) -> AgentGymEnv:
        """Same task and action prefix; shares the server id until either side steps (then replays)."""
        twin = AgentGymEnv.__new__(AgentGymEnv)
        twin.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("history", "_slot")})
        twin.history = list(self.history)
        twin._slot = _Slot()
        weakref.finalize(twin, _release, twin._slot)
        h = self._slot.handle
        if h is not None and not h.dead:
            with h.lock:
                h.users += 1
            twin._slot.handle = h
        return twin

    def __getattr__(self, attr: str) -> Any:
        # Static data of our own env of that name (TextCraft's recipe `book`, which its expert reads for
        # metadata) is the same whichever process serves the episode; episode state is never delegated.
        if attr in STATIC_LOCAL_ATTRS and self.__dict__.get("_local") is not None:
            return getattr(self.__dict__["_local"], attr)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def parse_action(self, text: str) -> str:
        if self._local is not None:
            return self._local.parse_action(text)
        # AgentGym's [A-Za-z0-9, ] cleaning would destroy WebShop's search[...]/click[...] actions.
        return parse_react_action(text, keep=None) if self.target.dialect == "env_idx" else parse_react_action(text)

    def is_success(self, reward: float, done: bool) -> bool:
        if self._local is not None:
            return self._local.is_success(reward, done)
        return reward >= 1.0  # AgentGym's evaluator: success = reward == 1

    def close(self) -> None:
        """Give the server id back: parked for reuse by other envs of this process (closed on the server
        at exit or when evicted from the bounded pool; WebShop has no `/close` and recycles ids itself)."""
        _release(self._slot)


_REACHABLE: set[tuple[int, str]] = set()


def _check_reachable(target: Target, policy: RetryPolicy) -> None:
    """Fail early with one line when the URL has no server (bad input), once per URL per process."""
    key = (os.getpid(), target.url)
    if key in _REACHABLE:
        return
    quick = RetryPolicy(retries=min(policy.retries, 2), backoff_s=policy.backoff_s, timeout_s=min(10.0, policy.timeout_s),
                        connect_timeout_s=policy.connect_timeout_s)
    try:
        call(target, "GET", "/", safe=True, policy=quick, send_body=False)
    except ServerUnreachable as e:
        raise UserError(str(e)) from None
    except EnvError:
        pass  # it answered: something listens there; real errors show on the first request
    _REACHABLE.add(key)


# -- registry glue ------------------------------------------------------------------------------------------------


class AgentGymSpec(EnvSpec):
    """An `EnvSpec` built on the fly for `agentgym:<name>@URL`; borrows our env's expert and metric."""

    def __init__(self, target: Target):
        ours = REGISTRY.get(target.name)
        super().__init__(
            name=target.spec_name,
            factory="agentprm.envs.agentgym:AgentGymEnv",
            description=f"AgentGym {target.name} server at {target.url} ({target.dialect} dialect)",
            # an expert that reads the env's hidden state cannot drive a remote env
            expert=ours.expert if ours and ours.expert_observation_only else None,
            metric=ours.metric if ours else "success",
            expert_observation_only=True,
        )
        self.target = target

    def make(self, **kwargs: Any) -> AgentGymEnv:
        return AgentGymEnv(self.target, **kwargs)


def agentgym_spec(full_name: str) -> AgentGymSpec:
    return AgentGymSpec(parse_target(full_name))
