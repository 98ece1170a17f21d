"""An `Env` backed by an AgentGym env server: `--env agentgym:<name>@http://HOST:PORT`.

The wire shapes are the target's `Dialect` (`dialects.py`), the calls and retries `transport.py`, the
server ids `pool.py`. Every failure becomes `EnvError`, which rollouts record as `env_error` (never a
silent reward 0). Task ids stay AgentGym's `<name>_<i>`; `i` is sent as `data_idx` / `session_id`.

A `step` whose outcome is unknown (read timeout, 5xx, dropped connection, or an id the server no longer
knows) is never re-sent on the same id: the env takes a fresh server id, resets it and replays the action
prefix (checking every observation), then sends the step there.

`clone()` is replay-based and copy-on-write: a clone shares its parent's server id until one of them
steps; the other then gets a server id at its own state from the per-process prefix cache (idle server
ids parked by `close()`, matched by longest action prefix of the same task, else any idle id reset), or
a new one, and replays only the missing suffix. Replayed observations, rewards and done flags must equal
the recorded ones, else `NondeterministicServerError`.

One `httpx.Client` (one connection pool) per base URL per process is shared by every env instance, so
batched rollouts simply hold many `AgentGymEnv`s (one server id each).
"""

from __future__ import annotations

import os
import re
import weakref
from functools import cache
from typing import Any

from agentprm.envs.agentgym.pool import POOL, Handle, Slot, close_on_server, release
from agentprm.envs.agentgym.transport import (
    KNOWN_ENVS,
    OutcomeUnknown,
    Remote,
    RetryPolicy,
    ServerReportedError,
    ServerUnreachable,
    Target,
    call,
    parse_target,
)
from agentprm.envs.base import REGISTRY, EnvSpec, StepResult, check_split, parse_react_action
from agentprm.errors import EnvError, UserError

# Attributes of our own env that hold static data, not episode state; read through by `AgentGymEnv`.
STATIC_LOCAL_ATTRS = frozenset({"book"})

GENERIC_SYSTEM_PROMPT = (
    "You are an agent acting in a text environment. Each turn you see an observation; answer with your "
    "reasoning and exactly one action in the format\n\nThought:\n<your reasoning>\n\nAction:\n<the action>"
)


class NondeterministicServerError(EnvError):
    """Replaying a recorded action prefix on a fresh server id gave a different observation."""


_INVALID_ID = re.compile(r"id \S+ is not valid|not valid|unknown (env|id)", re.IGNORECASE)


# -- what we know locally about an AgentGym env -----------------------------------------------------------------


@cache
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
        self._proto = Remote(self.target, self.policy)
        self.task_id: str | None = None
        self.first_observation = ""
        self.history: list[tuple[str, StepResult]] = []  # (action, result) since reset
        self._slot = Slot()
        weakref.finalize(self, release, self._slot)
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
            except OutcomeUnknown as e:  # (unreachable servers were already retried inside `call`)
                last = e
            except ServerReportedError as e:
                if not _INVALID_ID.search(e.message):
                    raise
                last = e  # the server lost our id (evicted, restarted): replay on a new one
            self._drop_handle(h if h is not None else self._slot.handle)
            if failures < self.policy.retries:
                self.policy.pause(failures)
            failures += 1
        if isinstance(last, OutcomeUnknown):
            raise EnvError(f"{last} (gave up after {failures} attempts)") from last
        raise last if last is not None else EnvError("could not get a server id in a consistent state")

    def _prefix(self) -> tuple[str, ...]:
        return tuple(a for a, _ in self.history)

    def _drop_handle(self, h: Handle | None) -> None:
        if h is None:
            return
        h.dead = True
        if self._slot.handle is h:
            release(self._slot)

    def _materialize(self, fresh_reset: bool) -> tuple[Handle, str]:
        """A handle in this env's state, with the reset observation where a reset happened."""
        task_id = self.task_id
        assert task_id is not None  # reset() sets it before any _run
        close_on_server(POOL.drain_closes(), self.policy)
        prefix = self._prefix()
        h = self._slot.handle
        if not fresh_reset and h is not None and not h.dead and h.task_id == self.task_id and h.prefix == prefix:
            return h, self.first_observation
        if h is not None and (fresh_reset or h.users > 1 or h.dead):
            release(self._slot)  # shared or stale: leave it to the others / the pool
            h = None
        if h is None:
            h = POOL.take(self.target, task_id, prefix) if not fresh_reset else POOL.take(self.target, "", ())
            if h is None:
                h = Handle(self.target, self._proto.create())
            h.users = 1
            self._slot.handle = h
        obs = self.first_observation
        if (
            fresh_reset
            or h.task_id != self.task_id
            or prefix[: len(h.prefix)] != h.prefix
            or len(h.prefix) > len(prefix)
        ):
            obs = self._proto.reset(h.sid, self.index_of(task_id))
            h.task_id, h.prefix = self.task_id, ()
            if not fresh_reset:
                self._check_replay(h, -1, "(reset)", obs, self.first_observation)
        for k in range(len(h.prefix), len(prefix)):
            action, want = self.history[k]
            try:
                got = self._proto.step(h.sid, action)
            except OutcomeUnknown:
                h.dead = True
                raise
            h.prefix = (*h.prefix, action)
            self._check_replay(h, k, action, got, want)
        return h, obs

    def _check_replay(self, h: Handle, k: int, action: str, got: Any, want: Any) -> None:
        if isinstance(got, StepResult):
            same = (got.observation, got.reward, got.done) == (want.observation, want.reward, want.done)
            got_s, want_s = (
                f"{got.observation!r} r={got.reward} done={got.done}",
                f"{want.observation!r} r={want.reward} done={want.done}",
            )
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
        twin._slot = Slot()
        weakref.finalize(twin, release, twin._slot)
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
        release(self._slot)


_REACHABLE: set[tuple[int, str]] = set()


def _check_reachable(target: Target, policy: RetryPolicy) -> None:
    """Fail early with one line when the URL has no server (bad input), once per URL per process."""
    key = (os.getpid(), target.url)
    if key in _REACHABLE:
        return
    quick = RetryPolicy(
        retries=min(policy.retries, 2),
        backoff_s=policy.backoff_s,
        timeout_s=min(10.0, policy.timeout_s),
        connect_timeout_s=policy.connect_timeout_s,
    )
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
