"""Test helpers for the AgentGym protocol: a scripted env with AgentGym-style task ids, and fault injection.

`NumberedScriptedEnv`: `ScriptedEnv` whose tasks are `scriptline_<i>` (sequence length 1 + i % 4), so it
fits AgentGym's `<name>_<i>` ids. `FaultPlan` + `with_faults(app, plan)`: a middleware that answers the next
requests to a path with a scripted failure, to test the client's error paths against a real server.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict, deque

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agentprm.testing.fakes import ScriptedEnv


class NumberedScriptedEnv(ScriptedEnv):
    name = "scriptline"

    def task_ids(self, split: str, n: int | None = None) -> list[str]:
        base = 0 if split == "train" else 1000
        count = self._n[split] if n is None else n
        return [f"scriptline_{base + i}" for i in range(count)]

    def reset(self, task_id: str) -> str:
        i = int(task_id.rsplit("_", 1)[1])
        return super().reset(f"line_{1 + i % 4}")

    def sample_action(self, rng) -> str:
        return rng.choice("abcd")


class FaultPlan:
    """Per path, a queue of faults for the next requests:
    `"503"`, `"500"`, `"422"`, `"error"` (200 + {"error"}), `"sleep:S"` (answer after S seconds),
    `"lost"` (apply the request, then answer 500: the response is lost but the state changed)."""

    def __init__(self) -> None:
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.seen: dict[str, int] = defaultdict(int)

    def add(self, path: str, *faults: str) -> None:
        with self._lock:
            self._faults[path].extend(faults)

    def next(self, path: str) -> str | None:
        with self._lock:
            self.seen[path] += 1
            q = self._faults.get(path)
            return q.popleft() if q else None


def with_faults(app: FastAPI, plan: FaultPlan) -> FastAPI:
    @app.middleware("http")
    async def inject(request: Request, call_next):
        fault = plan.next(request.url.path)
        if fault is None:
            return await call_next(request)
        if fault == "503":
            return JSONResponse({"detail": "busy"}, status_code=503)
        if fault == "500":
            return JSONResponse({"detail": "boom"}, status_code=500)
        if fault == "422":
            return JSONResponse(
                {"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required"}]}, status_code=422
            )
        if fault == "error":
            return JSONResponse({"error": "injected failure"})
        if fault.startswith("sleep:"):
            await asyncio.sleep(float(fault.split(":", 1)[1]))
            return await call_next(request)
        if fault == "lost":
            await call_next(request)
            return JSONResponse({"detail": "response lost"}, status_code=500)
        raise ValueError(f"unknown fault {fault!r}")

    return app


def scripted_expert(env, task_id: str, seed: int):
    """Expert for `NumberedScriptedEnv` that plans from the first observation only ("Type k words."),
    so it runs unchanged on the in-process env and on an `AgentGymEnv` in front of it."""
    from agentprm.trajectory import Step, Trajectory

    obs = env.reset(task_id)
    k = int(obs.split()[1])
    traj = Trajectory(
        id=f"{task_id}-expert-{seed}",
        env=env.name,
        task_id=task_id,
        system_prompt=env.system_prompt,
        first_observation=obs,
        policy="expert",
        seed=seed,
    )
    for t, word in enumerate("abcdefghijklmnopqrstuvwxyz"[:k]):
        output = f"Thought: word {t + 1} of {k}.\nAction: {word}"
        res = env.step(env.parse_action(output))
        traj.steps.append(Step(t, obs, output, word, res.reward, res.done, info=dict(res.info)))
        traj.compute.env_steps += 1
        obs = res.observation
        if res.done:
            break
    traj.final_observation = obs
    traj.reward = traj.steps[-1].reward if traj.steps else 0.0
    traj.success = env.is_success(traj.reward, True)
    traj.status = "done" if traj.steps and traj.steps[-1].done else "max_rounds"
    return traj
