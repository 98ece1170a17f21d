"""`VLLMPolicy`: the `Policy` protocol on vLLM (`--backend vllm`, the `vllm` GPU extra).

Same contract as `HFPolicy`, so collect, eval, search and RL sampling take either:
- the prompt is the tokenizer's chat template with the generation prompt, sent as token ids (the same
  ids `HFPolicy` feeds its model), with prefix caching on (a conversation's history is cached across
  rounds, as `HFPolicy`'s prefix store does);
- sample k of conversation i is its own request with `seed = row_seed(seed_i, k)` (vLLM seeds each
  request's sampler), so what a row samples does not depend on the batch; greedy ignores seeds;
- generation stops at the end of the assistant turn: the same stop ids as `HFPolicy` (`_stop_ids`);
  the text is the HF tokenizer's decoding of the tokens before the stop token, and `generated_tokens`
  counts the stop token, as HF does, whether or not vLLM returns it in `token_ids`.

vLLM is imported only when this backend is asked for; without it, one line says how to install it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentprm.conversation import Message
from agentprm.errors import UserError
from agentprm.policy.base import Generation
from agentprm.policy.hf import (
    HFPolicy,
    _conversation_seeds,
    _stop_ids,
    check_policy_dir,
    quiet_transformers,
    read_policy_meta,
    row_seed,
)

BACKENDS = ("hf", "vllm")


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise UserError(f'--backend vllm needs vLLM on a CUDA machine: pip install "agentprm[vllm]" ({e})') from None
    return vllm


class _GenConfigHolder:  # what `_stop_ids` reads from a model: its generation config's eos ids
    def __init__(self, path: str):
        from transformers import GenerationConfig

        try:
            self.generation_config: GenerationConfig | None = GenerationConfig.from_pretrained(path)
        except OSError:
            self.generation_config = None


class VLLMPolicy:
    """A vLLM engine + the HF tokenizer of the same dir (for rendering, stop ids and decoding)."""

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        name: str,
        *,
        stop_ids: list[int],
        meta: dict[str, Any] | None = None,
        sampling_params_cls: Any = None,
    ):
        if getattr(tokenizer, "chat_template", None) is None:
            raise UserError(f"tokenizer of {name} has no chat template; use a chat/instruct model or set one")
        self.llm = llm
        self.tokenizer = tokenizer
        self.name = name
        self.stop_ids = stop_ids
        self.meta = meta or {}
        self._sampling_params = sampling_params_cls or import_vllm().SamplingParams

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        name: str | None = None,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        **engine_kwargs: Any,
    ) -> VLLMPolicy:
        vllm = import_vllm()
        from transformers import AutoTokenizer

        quiet_transformers()
        check_policy_dir(path)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        llm = vllm.LLM(
            model=str(path),
            tokenizer=str(path),
            dtype=dtype,
            enable_prefix_caching=True,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            **engine_kwargs,
        )
        stops = _stop_ids(_GenConfigHolder(str(path)), tokenizer)
        return cls(
            llm,
            tokenizer,
            name or str(path),
            stop_ids=stops,
            meta=read_policy_meta(path),
            sampling_params_cls=vllm.SamplingParams,
        )

    def prompt_ids(self, conversation: list[Message]) -> list[int]:
        return HFPolicy.prompt_ids(self, conversation)  # type: ignore[arg-type]  # one rendering for both backends

    def requests(
        self,
        conversations: list[list[Message]],
        *,
        n: int,
        temperature: float,
        max_new_tokens: int,
        seed: int | Sequence[int] | None,
    ) -> tuple[list[dict[str, Any]], list[Any], list[tuple[int, int]]]:
        """(prompts, sampling params, (conversation, sample) of each request): one request per sample."""
        if n < 1:
            raise ValueError("n must be at least 1")
        conv_seeds = _conversation_seeds(seed, len(conversations))
        prompts, params, rows = [], [], []
        for i, conv in enumerate(conversations):
            ids = self.prompt_ids(conv)
            for k in range(n):
                s = row_seed(conv_seeds[i], k) if (temperature > 0 and conv_seeds is not None) else None
                prompts.append({"prompt_token_ids": ids})
                params.append(
                    self._sampling_params(
                        n=1,
                        temperature=float(temperature),
                        top_p=1.0,
                        top_k=-1,
                        max_tokens=max_new_tokens,
                        seed=s,
                        stop_token_ids=list(self.stop_ids),
                        ignore_eos=False,
                        skip_special_tokens=True,
                        detokenize=False,
                    )
                )
                rows.append((i, k))
        return prompts, params, rows

    def to_generation(self, output: Any, prompt_tokens: int) -> Generation:
        """A vLLM `CompletionOutput` as our `Generation` (text and token counts as `HFPolicy` gives them)."""
        toks = list(output.token_ids)
        finished = output.finish_reason == "stop"
        stops = set(self.stop_ids)
        body = toks[:-1] if toks and toks[-1] in stops else toks
        generated = len(body) + (1 if finished else 0)  # the end-of-turn token counts, as in HF
        text = self.tokenizer.decode(body, skip_special_tokens=True).strip()
        return Generation(text, prompt_tokens, generated, finished)

    def generate(
        self,
        conversations: list[list[Message]],
        *,
        n: int = 1,
        temperature: float = 1.0,
        max_new_tokens: int = 128,
        seed: int | Sequence[int] | None = None,
    ) -> list[list[Generation]]:
        prompts, params, rows = self.requests(
            conversations, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed
        )
        outs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        if len(outs) != len(prompts):
            raise RuntimeError(f"vLLM answered {len(outs)} results for {len(prompts)} requests")
        result: list[list[Generation | None]] = [[None] * n for _ in conversations]
        for (i, k), prompt, out in zip(rows, prompts, outs, strict=True):
            result[i][k] = self.to_generation(out.outputs[0], len(prompt["prompt_token_ids"]))
        return result  # type: ignore[return-value]


def load_policy_backend(path: str | Path, backend: str = "hf", **kwargs: Any) -> Any:
    """A policy dir on the chosen generation backend (`hf`: `HFPolicy`, `vllm`: `VLLMPolicy`)."""
    if backend == "hf":
        return HFPolicy.load(str(path), **kwargs)
    if backend == "vllm":
        kwargs.pop("batch_size", None)  # vLLM schedules its own batches
        return VLLMPolicy.load(path, **kwargs)
    raise UserError(f"unknown --backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
