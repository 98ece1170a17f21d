"""The vLLM backend without vLLM: request building (prompt ids, per-request seeds, stop ids), result
mapping from objects shaped like vLLM's documented `RequestOutput`/`CompletionOutput`, and the import
guard. Real parity with the HF backend runs on a GPU machine (`scripts/gpu_check.sh`)."""

import importlib.util
import random
from dataclasses import dataclass, field

import pytest

from agentprm.conversation import trajectory_messages
from agentprm.errors import UserError
from agentprm.policy.hf import HFPolicy, row_seed
from agentprm.policy.vllm import VLLMPolicy, load_policy_backend
from agentprm.testing.policies import tiny_policy_dir
from tests.prm_helpers import scripted_dataset


class FakeSamplingParams:  # vllm.SamplingParams keeps its arguments as attributes
    def __init__(self, **kw):
        self.__dict__.update(kw)


@dataclass
class CompletionOutput:  # vllm.outputs.CompletionOutput's fields we read
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:  # vllm.outputs.RequestOutput's fields we read
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: None
    outputs: list[CompletionOutput]
    finished: bool = True


@dataclass
class FakeLLM:
    """Samples tokens from a pure function of (prompt ids, seed, position); stops like vLLM: a stop token
    ends the output (kept in token_ids unless `drop_stop`), else max_tokens gives finish_reason 'length'."""

    stop_at: int | None = 3  # emit the stop token at this position (None: never)
    stop_token: int = 0
    drop_stop: bool = False
    calls: list = field(default_factory=list)

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params))
        outs = []
        for j, (p, sp) in enumerate(zip(prompts, params, strict=True)):
            rng = random.Random(repr((p["prompt_token_ids"], sp.seed if sp.temperature > 0 else "greedy")))
            toks, reason = [], "length"
            for t in range(sp.max_tokens):
                if self.stop_at is not None and t == self.stop_at:
                    if not self.drop_stop:
                        toks.append(sp.stop_token_ids[0])
                    reason = "stop"
                    break
                toks.append(rng.randrange(10, 60))
            outs.append(
                RequestOutput(
                    str(j), None, p["prompt_token_ids"], None, [CompletionOutput(0, "", toks, None, None, reason)]
                )
            )
        return outs


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    return HFPolicy.load(str(tiny_policy_dir(tmp_path_factory.mktemp("vllm") / "policy")))


def _policy(hf, llm):
    return VLLMPolicy(llm, hf.tokenizer, "fake-vllm", stop_ids=hf.stop_ids, sampling_params_cls=FakeSamplingParams)


def test_requests_use_hf_prompt_ids_per_sample_seeds_and_the_turn_stop(hf):
    convs = [trajectory_messages(t)[:3] for t in scripted_dataset(3)]
    pol = _policy(hf, FakeLLM())
    prompts, params, rows = pol.requests(convs, n=2, temperature=0.7, max_new_tokens=9, seed=[11, 12, 13])
    assert rows == [(i, k) for i in range(3) for k in range(2)]
    assert [p["prompt_token_ids"] for p in prompts] == [hf.prompt_ids(convs[i]) for i, _ in rows]
    assert [sp.seed for sp in params] == [row_seed(s, k) for s in (11, 12, 13) for k in range(2)]
    assert all(
        sp.n == 1 and sp.max_tokens == 9 and sp.stop_token_ids == hf.stop_ids and not sp.detokenize for sp in params
    )
    # one int seeds conversation i with row_seed(seed, i), as HFPolicy does
    _, params1, _ = pol.requests(convs, n=1, temperature=1.0, max_new_tokens=4, seed=5)
    assert [sp.seed for sp in params1] == [row_seed(row_seed(5, i), 0) for i in range(3)]
    _, greedy, _ = pol.requests(convs, n=1, temperature=0.0, max_new_tokens=4, seed=5)
    assert all(sp.seed is None and sp.temperature == 0.0 for sp in greedy)


def test_samples_do_not_depend_on_the_batch(hf):
    convs = [trajectory_messages(t)[:3] for t in scripted_dataset(3, seed=2)]
    pol = _policy(hf, FakeLLM(stop_at=None))
    together = pol.generate(convs, n=2, temperature=1.0, max_new_tokens=6, seed=[1, 2, 3])
    alone = pol.generate(convs[2:], n=2, temperature=1.0, max_new_tokens=6, seed=[3])
    assert together[2] == alone[0]
    assert together[0][0] != together[0][1]  # the n samples of one conversation differ


@pytest.mark.parametrize("drop_stop", [False, True])
def test_results_map_to_generations_like_hf(hf, drop_stop):
    conv = trajectory_messages(scripted_dataset(1)[0])[:3]
    llm = FakeLLM(stop_at=3, drop_stop=drop_stop)
    pol = _policy(hf, llm)
    g = pol.generate([conv], n=1, temperature=0.0, max_new_tokens=8)[0][0]
    body = FakeLLM(stop_at=None).generate(*llm.calls[0])[0].outputs[0].token_ids[:3]  # the same draws, uncut
    assert g.finished and g.generated_tokens == 4  # 3 tokens + the end-of-turn token, with or without it in token_ids
    assert g.text == hf.tokenizer.decode(body, skip_special_tokens=True).strip()
    assert g.prompt_tokens == len(hf.prompt_ids(conv))
    cut = _policy(hf, FakeLLM(stop_at=None)).generate([conv], n=1, temperature=0.0, max_new_tokens=5)[0][0]
    assert not cut.finished and cut.generated_tokens == 5  # the cap cut the turn: finish_reason "length"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_backend_vllm_without_vllm_is_one_clear_line(tmp_path):
    with pytest.raises(UserError, match=r"pip install \"agentprm\[vllm\]\""):
        load_policy_backend(tmp_path, "vllm")
    with pytest.raises(UserError, match="--backend"):
        load_policy_backend(tmp_path, "tgi")
