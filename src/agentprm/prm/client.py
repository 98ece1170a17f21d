"""`RemoteRewardModel`: the `RewardModel` protocol over HTTP, against `agentprm serve-prm`.

Search (`agentprm search --rm http://127.0.0.1:PORT`) and RL use it exactly as the in-process
`PRMScorer`. A server that is down or answers an error is never turned into a score: after `retries`
attempts (connection errors and 5xx are retried with backoff; 4xx are not: the request itself is wrong)
the call raises `RewardModelError`, which the CLI reports in one line (finished work stays in the JSONL,
so the same command resumes once the server is back).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from agentprm.conversation import Message
from agentprm.errors import RewardModelError, UserError
from agentprm.prm.base import StepScores


def _floats(xs: list) -> list[float]:
    """Scores as floats; None (a candidate the server could not score), a bool or a non-number raise."""
    if not isinstance(xs, list) or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in xs):
        raise ValueError(f"scores are not a list of numbers: {str(xs)[:80]}")
    return [float(x) for x in xs]


class RemoteRewardModel:
    """Scores conversations on a PRM server. `chunk` conversations go in one request (the server's
    request limit; concurrent requests from many clients are batched together by the server)."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout: float = 300.0,
        retries: int = 3,
        backoff: float = 0.5,
        chunk: int = 256,
        check: bool = True,
    ):
        self.url = url.rstrip("/")
        self.retries = max(1, retries)
        self.backoff = backoff
        self.chunk = chunk
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self.health: dict[str, Any] = {}
        if check:
            try:
                self.health = self._call("GET", "/health", None, retries=1)
            except RewardModelError as e:
                raise UserError(
                    f"no PRM server answers at {self.url} ({e.reason}); start one with `agentprm serve-prm --rm DIR --port PORT`"
                ) from None
        self.name = name or self.health.get("model") or "remote"

    def _call(self, method: str, path: str, body: Any, retries: int | None = None) -> Any:
        reason = ""
        for attempt in range(retries or self.retries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                r = self._http.request(method, path, json=body)
            except httpx.HTTPError as e:  # connection refused, reset, timeout: the server may come back
                reason = f"{type(e).__name__}: {e}"
                continue
            if r.status_code < 400:
                try:
                    return r.json()
                except ValueError:  # a garbled or cut answer is a failed transfer, never a score: retried
                    reason = f"HTTP {r.status_code} with a body that is not JSON: {r.text[:80]!r}"
                    continue
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            reason = f"HTTP {r.status_code}: {detail}"
            if r.status_code < 500:  # the request itself is wrong: retrying cannot help
                break
        raise RewardModelError(self.url, reason)

    def score(self, conversations: list[list[Message]]) -> list[StepScores]:
        out: list[StepScores] = []
        for i in range(0, len(conversations), self.chunk):
            part = conversations[i : i + self.chunk]
            d = self._call("POST", "/score", {"conversations": part})
            try:
                if len(d["scores"]) != len(part) or len(d["tokens"]) != len(part):
                    raise ValueError(f"{len(d['scores'])} results for {len(part)} conversations")
                out += [StepScores(_floats(s), int(n)) for s, n in zip(d["scores"], d["tokens"], strict=True)]
            except (KeyError, TypeError, ValueError) as e:  # a malformed answer is an error, not a score
                raise RewardModelError(self.url, f"malformed /score answer: {e}") from None
        return out

    def score_candidates(self, conversation: list[Message], actions: list[str]) -> StepScores:
        if conversation and conversation[-1]["role"] != "user":
            raise ValueError("score_candidates needs a conversation that ends in a user turn (the observation)")
        scores: list[float] = []
        tokens = 0
        for i in range(0, len(actions), self.chunk):
            part = actions[i : i + self.chunk]
            d = self._call("POST", "/score_candidates", {"conversation": conversation, "actions": part})
            try:
                if len(d["scores"]) != len(part):
                    raise ValueError(f"{len(d['scores'])} scores for {len(part)} candidates")
                scores += _floats(d["scores"])
                tokens += int(d["tokens"])
            except (KeyError, TypeError, ValueError) as e:
                raise RewardModelError(self.url, f"malformed /score_candidates answer: {e}") from None
        return StepScores(scores, tokens)

    def close(self) -> None:
        self._http.close()
