"""One `Dialect` per upstream AgentGym env server: its request bodies and its answers, for both sides.

The client (`AgentGymEnv`) builds requests and parses answers with a dialect; our server
(`agentprm.serve.app`) validates requests and builds answers with the same dialect. So the two test each
other by construction, and a shape lives in one place (`../shared/envs.md` §5):

- `textcraft` (`id` family): `POST /create` needs a JSON body (`{}`; no body is FastAPI's 422) and answers
  `{"id", "observation", "done", "reward"}` for task `<name>_0`; `POST /reset {"id", "data_idx"}` ->
  `{"id", "observation", "done", "reward"}`; `POST /step {"id", "action"}` -> `{"observation", "reward",
  "done"}`; `GET /observation?id=` -> a bare string; `GET /detail?id=` -> `{"observation", "done",
  "reward", "deleted"}`; `POST /close {"id"}` -> `true`/`false`.
- `babyai` (`id` family): `POST /create` (no body needed) -> `{"id"}`; `/reset` -> `{"observation",
  "reward", "score", "deleted", "done"}`; `/step` -> `{"observation", "reward", "score", "done"}`;
  `GET /observation?id=` -> a dict like reset's. `score` is the summed reward.
- `webshop` (`env_idx` family): `POST /create` (no body) -> a bare int drawn from AgentGym's range;
  `POST /reset {"env_idx", "session_id"}` -> `[observation, null]`; `POST /step {"env_idx", "action"}` ->
  `{"state", "reward", "done", "info": null}`; `GET /observation?env_idx=` -> a string;
  `GET /list_envs` -> ids. Two gaps of the upstream server are closed here: `POST /close {"env_idx"}`
  exists (AgentGym's client `close()` retries a 404 five times, then raises), and an unknown id answers
  HTTP 404 with the error body (AgentGym's client asserts the status, so it stops at the bad call, not one
  call later).
- `id`: the common subset of the `id` family, for AgentGym servers we only talk to (SciWorld and the like).

Errors are HTTP 200 with `{"error": "..."}` (AgentGym's texts: "The id N is not valid.", "The task with
environment N has finished.") except where noted; wrong types are FastAPI's 422.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from agentprm.envs.base import StepResult
from agentprm.errors import EnvError

WEBSHOP_MAX_ID = 48950076  # AgentGym's WebShop server draws ids with random.randint(0, 48950076)

# Keys of a step answer that are not `info`. BabyAI's `score` (the summed reward) is derivable and left out so
# trajectories through a server match in-process ones.
_STEP_KEYS = frozenset({"observation", "state", "reward", "done", "score"})


class IdBody(BaseModel):
    id: int


class IdReset(BaseModel):
    id: int
    data_idx: int = 0


class IdStep(BaseModel):
    id: int
    action: str


class TextCraftCreate(BaseModel):
    commands: str | None = None
    goal: str | None = None


class IdxBody(BaseModel):
    env_idx: int


class IdxReset(BaseModel):
    env_idx: int
    session_id: int | None = None


class IdxStep(BaseModel):
    env_idx: int
    action: str


def field_of(body: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(body, dict) or key not in body or not isinstance(body[key], kind):
        raise EnvError(f"{where}: unexpected response {str(body)[:200]!r} (no {kind} field {key!r})")
    return body[key]


@dataclass(frozen=True)
class State:
    """What a server answer is built from: one live env id's last observation and totals."""

    observation: str
    reward: float
    score: float
    done: bool


class Dialect:
    """The `id` family (TextCraft, BabyAI, SciWorld...): `{"id"}` in every body, `data_idx` picks the task."""

    name: ClassVar[str] = "id"
    family: ClassVar[str] = "id"
    id_key: ClassVar[str] = "id"
    index_key: ClassVar[str] = "data_idx"
    random_ids: ClassVar[bool] = False  # server ids drawn at random (WebShop) rather than counted up
    finished_is_error: ClassVar[bool] = True  # a step after done is an error (WebShop steps on)
    invalid_status: ClassVar[int] = 200  # HTTP status of an unknown env id or task index (at reset)
    reset_on_create: ClassVar[bool] = False
    create_body: ClassVar[type[BaseModel] | None] = None  # a required /create body model, or none
    reset_body: ClassVar[type[BaseModel]] = IdReset
    step_body: ClassVar[type[BaseModel]] = IdStep
    close_body: ClassVar[type[BaseModel]] = IdBody
    extra_gets: ClassVar[tuple[str, ...]] = ()  # "detail", "list_envs"

    # -- client side: requests and the parsing of answers ------------------------------------------------
    def create_request(self) -> tuple[bool, Any]:
        """(send a body?, the body). TextCraft needs a JSON body ({} is fine); BabyAI ignores it."""
        return True, {}

    def parse_create(self, body: Any, where: str) -> int:
        return int(field_of(body, "id", int, where))

    def reset_request(self, sid: int, index: int) -> dict[str, Any]:
        return {self.id_key: sid, self.index_key: index}

    def parse_reset(self, body: Any, where: str) -> str:
        return field_of(body, "observation", str, where)

    def step_request(self, sid: int, action: str) -> dict[str, Any]:
        return {self.id_key: sid, "action": action}

    def parse_step(self, body: Any, where: str) -> StepResult:
        obs = field_of(body, self.observation_key, str, where)
        reward = field_of(body, "reward", (int, float), where)
        done = field_of(body, "done", (bool, int), where)
        info = {k: v for k, v in body.items() if k not in _STEP_KEYS and v is not None}
        return StepResult(obs, float(reward), bool(done), info)

    observation_key: ClassVar[str] = "observation"

    def close_request(self, sid: int) -> dict[str, Any]:
        return {self.id_key: sid}

    # -- server side: the answers --------------------------------------------------------------------------
    def hello(self, env_name: str) -> str:
        return f"This is environment {env_name}."

    def invalid(self, sid: int) -> dict[str, str]:
        return {"error": f"The id {sid} is not valid."}

    def finished(self, sid: int) -> dict[str, str]:
        return {"error": f"The task with environment {sid} has finished."}

    def not_reset(self, sid: int) -> dict[str, str]:
        return {"error": f"The environment {sid} has not been reset."}

    def create_answer(self, sid: int, st: State | None) -> Any:
        return {"id": sid}

    def reset_answer(self, sid: int, st: State) -> Any:
        return {"observation": st.observation, "reward": st.reward, "done": st.done}

    def step_answer(self, sid: int, st: State) -> Any:
        return {"observation": st.observation, "reward": st.reward, "done": st.done}

    def observation_answer(self, sid: int, st: State) -> Any:
        return st.observation

    def detail_answer(self, sid: int, st: State) -> Any:
        return {"observation": st.observation, "done": st.done, "reward": st.reward, "deleted": False}


class TextCraftDialect(Dialect):
    name = "textcraft"
    reset_on_create = True
    create_body = TextCraftCreate
    extra_gets = ("detail",)

    def create_answer(self, sid: int, st: State | None) -> Any:
        assert st is not None  # reset_on_create
        return {"id": sid, "observation": st.observation, "done": False, "reward": 0.0}

    def reset_answer(self, sid: int, st: State) -> Any:
        return {"id": sid, "observation": st.observation, "done": st.done, "reward": st.reward}


class BabyAIDialect(Dialect):
    name = "babyai"

    def reset_answer(self, sid: int, st: State) -> Any:
        return {
            "observation": st.observation,
            "reward": st.reward,
            "score": st.score,
            "deleted": False,
            "done": st.done,
        }

    def step_answer(self, sid: int, st: State) -> Any:
        return {"observation": st.observation, "reward": st.reward, "score": st.score, "done": st.done}

    def observation_answer(self, sid: int, st: State) -> Any:
        return self.reset_answer(sid, st)


class WebShopDialect(Dialect):
    name = "webshop"
    family = "env_idx"
    id_key = "env_idx"
    index_key = "session_id"
    random_ids = True
    finished_is_error = False
    invalid_status = 404
    reset_body = IdxReset
    step_body = IdxStep
    close_body = IdxBody
    observation_key = "state"
    extra_gets = ("list_envs",)

    def create_request(self) -> tuple[bool, Any]:
        return False, None

    def parse_create(self, body: Any, where: str) -> int:
        if isinstance(body, bool) or not isinstance(body, int):
            raise EnvError(f"{where}: expected a bare int env_idx, got {str(body)[:200]!r}")
        return body

    def parse_reset(self, body: Any, where: str) -> str:
        obs = body[0] if isinstance(body, list) and body else body
        if not isinstance(obs, str):
            raise EnvError(f"{where}: expected [observation, null], got {str(body)[:200]!r}")
        return obs

    def hello(self, env_name: str) -> str:
        return "ok"

    def create_answer(self, sid: int, st: State | None) -> Any:
        return sid

    def reset_answer(self, sid: int, st: State) -> Any:
        return [st.observation, None]

    def step_answer(self, sid: int, st: State) -> Any:
        return {"state": st.observation, "reward": st.reward, "done": st.done, "info": None}


TEXTCRAFT, BABYAI, WEBSHOP, ID = TextCraftDialect(), BabyAIDialect(), WebShopDialect(), Dialect()

# Servers `serve-env` imitates, by name.
SERVERS: dict[str, Dialect] = {d.name: d for d in (TEXTCRAFT, BABYAI, WEBSHOP)}
# What a client names after `+` in agentgym:<name>+<family>@URL, for servers it does not know by name.
FAMILIES: dict[str, Dialect] = {"id": ID, "env_idx": WEBSHOP}


def dialect_for(env_name: str, family: str) -> Dialect:
    """The dialect a client speaks to `env_name`'s server: that server's own if we know it, else the family's."""
    known = SERVERS.get(env_name)
    return known if known is not None and known.family == family else FAMILIES[family]
