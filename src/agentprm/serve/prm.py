"""`agentprm serve-prm`: a trained PRM behind HTTP, with dynamic batching of concurrent requests.

Endpoints (JSON):
- `POST /score` `{"conversations": [[{"role", "content"}, ...], ...]}` -> `{"scores": [[float per agent
  step], ...], "tokens": [int, ...]}`: the `RewardModel.score` contract, one forward pass per conversation.
- `POST /score_candidates` `{"conversation": [...ending in a user turn], "actions": [str, ...]}` ->
  `{"scores": [M(s_t, a) per action], "tokens": int}` (beam search).
- `POST /get_reward` `{"query": [str, ...], ...}` -> `{"rewards": [float, ...], "scores": [...]}`: OpenRLHF's
  remote reward model shape. A query is the text the policy's chat template rendered (prompt + response);
  its reward is the PRM's value at its last token after trailing pad/EOS are normalised to one EOS (as
  OpenRLHF's own server does), i.e. the score of the last agent step: the paper's trajectory score.
- `GET /health` -> model name, objective, counters.

Batching: request handlers tokenize (so limits are checked in tokens before any work is queued) and hand
their conversations to one scoring thread. That thread takes the first waiting request, then keeps taking
requests for at most `max_wait_ms` or until `max_batch_tokens` are gathered, and scores them all in one
`score_encoded` call (length-sorted, padded batches inside). Requests that arrive while a batch runs are
all taken at once by the next one, so under load the wait costs nothing and batches grow by themselves.

Limits answer 413 with a message naming the limit and its option: a body over `max_request_bytes`, more
than `max_request_conversations` conversations (or candidates, or queries), a conversation over
`max_conversation_tokens`. A malformed body is FastAPI's 422; a conversation the chat template cannot
align is 422 with the reason; a scoring failure is 500 with the reason (never a made-up score).
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from agentprm.prm.base import StepScores
from agentprm.prm.model import EncodedConversation, PRMScorer, encode_for_scoring


@dataclass
class ServeLimits:
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    max_batch_tokens: int = 32768  # tokens gathered into one scorer call
    max_request_bytes: int = 8 << 20
    max_request_conversations: int = 512
    max_conversation_tokens: int = 0  # 0: the PRM's own max_length (longer ones are windowed by the scorer)


class _Msg(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ScoreRequest(BaseModel):
    conversations: list[list[_Msg]]


class CandidatesRequest(BaseModel):
    conversation: list[_Msg]
    actions: list[str]


class RewardRequest(BaseModel):  # OpenRLHF sends prompts/labels too; they are accepted and not used
    query: list[str]
    prompts: list[str] | None = None
    labels: list[Any] | None = None


@dataclass
class _Job:
    encoded: list[EncodedConversation]
    tokens: int
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


@dataclass
class BatcherStats:
    requests: int = 0
    conversations: int = 0
    batches: int = 0
    errors: int = 0
    largest_batch: int = 0  # requests in the largest batch


class Batcher:
    """One scoring thread fed by a queue; `submit` returns a future of the request's `StepScores`."""

    def __init__(self, scorer: PRMScorer, max_wait_ms: float, max_batch_tokens: int):
        self.scorer = scorer
        self.max_wait = max_wait_ms / 1000
        self.max_batch_tokens = max_batch_tokens
        self.stats = BatcherStats()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._carry: _Job | None = None  # a request that did not fit the last batch goes first in the next
        self._thread = threading.Thread(target=self._loop, name="prm-batcher", daemon=True)
        self._thread.start()

    def submit(self, encoded: list[EncodedConversation]) -> concurrent.futures.Future:
        job = _Job(encoded, sum(len(e.input_ids) for e in encoded))
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _gather(self) -> list[_Job] | None:
        first = self._carry or self._queue.get()
        self._carry = None
        if first is None:
            return None
        jobs, tokens = [first], first.tokens
        deadline = time.monotonic() + self.max_wait
        while tokens < self.max_batch_tokens:
            try:  # whatever is already queued is taken without waiting; then wait until the deadline
                job = (
                    self._queue.get_nowait()
                    if self._queue.qsize()
                    else self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                )
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this batch
                break
            if tokens + job.tokens > self.max_batch_tokens:
                self._carry = job
                break
            jobs.append(job)
            tokens += job.tokens
        return jobs

    def _loop(self) -> None:
        while (jobs := self._gather()) is not None:
            flat = [e for j in jobs for e in j.encoded]
            try:
                results = self.scorer.score_encoded(flat) if flat else []
            except Exception as e:  # noqa: BLE001 - every waiting request gets the failure, not a score
                self.stats.errors += len(jobs)
                for j in jobs:
                    j.future.set_exception(e)
                continue
            self.stats.batches += 1
            self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
            pos = 0
            for j in jobs:
                self.stats.requests += 1
                self.stats.conversations += len(j.encoded)
                j.future.set_result(results[pos : pos + len(j.encoded)])
                pos += len(j.encoded)


def _eos_normalised(text: str, tokenizer: Any) -> str:
    """OpenRLHF's normalisation of a query: trailing pad/EOS and whitespace dropped, then one EOS."""
    eos, pad = tokenizer.eos_token or "", tokenizer.pad_token or ""
    text = text.rstrip()
    changed = True
    while changed:
        changed = False
        for t in (pad, eos):
            if t and text.endswith(t):
                text, changed = text[: -len(t)].rstrip(), True
    return text + eos


def create_prm_app(scorer: PRMScorer, limits: ServeLimits | None = None, *, name: str | None = None) -> FastAPI:
    """The FastAPI app serving `scorer`; its batching thread stops when the app shuts down."""
    lim = limits or ServeLimits()
    max_conv_tokens = lim.max_conversation_tokens or scorer.max_length
    tok = scorer.tokenizer
    batcher = Batcher(scorer, lim.max_wait_ms, lim.max_batch_tokens)
    app = FastAPI(title="agentprm PRM server", on_shutdown=[batcher.close])
    app.state.batcher = batcher
    model_name = name or scorer.name

    @app.middleware("http")
    async def size_limit(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > lim.max_request_bytes:
            return JSONResponse(
                {
                    "detail": f"request body of {length} bytes exceeds the server's limit of {lim.max_request_bytes} (serve-prm --max-request-mb); send fewer conversations per request"
                },
                status_code=413,
            )
        return await call_next(request)

    def check_count(n: int, what: str) -> None:
        if n > lim.max_request_conversations:
            raise HTTPException(
                413,
                f"{n} {what} in one request; the server takes at most {lim.max_request_conversations} (serve-prm --max-request-conversations); split the request",
            )

    def encode_all(convs: list[list[dict[str, str]]]) -> list[EncodedConversation]:
        out = []
        for i, c in enumerate(convs):
            try:
                e = encode_for_scoring(tok, c)
            except ValueError as err:
                raise HTTPException(422, f"conversation {i}: {err}") from None
            if len(e.input_ids) > max_conv_tokens:
                raise HTTPException(
                    413,
                    f"conversation {i} has {len(e.input_ids)} tokens; the server takes at most {max_conv_tokens} (serve-prm --max-conversation-tokens)",
                )
            out.append(e)
        return out

    async def run(encoded: list[EncodedConversation]) -> list[StepScores]:
        import asyncio

        try:
            return await asyncio.wrap_future(batcher.submit(encoded))
        except Exception as e:  # noqa: BLE001 - reported to the client as a 500 with the reason
            raise HTTPException(500, f"scoring failed: {type(e).__name__}: {e}") from None

    @app.get("/health")
    def health() -> dict[str, Any]:
        s = batcher.stats
        return {
            "status": "ok",
            "model": model_name,
            "objective": scorer.name,
            "max_length": scorer.max_length,
            "requests": s.requests,
            "conversations": s.conversations,
            "batches": s.batches,
            "largest_batch": s.largest_batch,
            "errors": s.errors,
        }

    @app.post("/score")
    async def score(body: ScoreRequest) -> dict[str, Any]:
        check_count(len(body.conversations), "conversations")
        convs = [[m.model_dump() for m in c] for c in body.conversations]
        res = await run(await run_in_threadpool(encode_all, convs))
        return {"scores": [r.scores for r in res], "tokens": [r.tokens for r in res]}

    @app.post("/score_candidates")
    async def score_candidates(body: CandidatesRequest) -> dict[str, Any]:
        check_count(len(body.actions), "candidate actions")
        conv = [m.model_dump() for m in body.conversation]
        if conv and conv[-1]["role"] != "user":
            raise HTTPException(422, "score_candidates needs a conversation that ends in a user turn (the observation)")
        res = await run(
            await run_in_threadpool(encode_all, [[*conv, {"role": "assistant", "content": a}] for a in body.actions])
        )
        return {"scores": [r.scores[-1] if r.scores else None for r in res], "tokens": sum(r.tokens for r in res)}

    def encode_queries(queries: list[str]) -> list[EncodedConversation]:
        out = []
        for i, q in enumerate(queries):
            ids = tok(_eos_normalised(q, tok), add_special_tokens=False)["input_ids"]
            if not ids:
                raise HTTPException(422, f"query {i} is empty")
            if len(ids) > max_conv_tokens:
                raise HTTPException(
                    413,
                    f"query {i} has {len(ids)} tokens; the server takes at most {max_conv_tokens} (serve-prm --max-conversation-tokens)",
                )
            out.append(EncodedConversation(ids, [len(ids) - 1]))
        return out

    @app.post("/get_reward")
    async def get_reward(body: RewardRequest) -> dict[str, Any]:
        check_count(len(body.query), "queries")
        res = await run(await run_in_threadpool(encode_queries, body.query))
        rewards = [r.scores[-1] for r in res]
        return {"rewards": rewards, "scores": rewards}

    return app
