"""SFT's loss on trained positions only equals HF's full-logits loss; activation recompute and bf16 LoRA
bases train; presets resolve in the library (so `base: smollm2` works in a pipeline config)."""

from __future__ import annotations

import pytest
import torch

from agentprm.errors import UserError
from agentprm.policy.sft import IGNORE, SFTConfig, _trained_positions_loss, resolve_base, train_sft
from agentprm.testing.policies import scripted_demos, tiny_policy_dir
from agentprm.trajectory import write_trajectories


def test_trained_positions_loss_equals_hf_loss_and_its_gradient():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=50,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    ids = torch.randint(0, 50, (3, 12))
    labels = torch.full_like(ids, IGNORE)
    labels[0, 4:7] = ids[0, 4:7]
    labels[1, 9:12] = ids[1, 9:12]
    labels[2, 1:3] = ids[2, 1:3]
    ref = model(input_ids=ids, labels=labels).loss
    (g_ref,) = torch.autograd.grad(ref, model.model.layers[0].mlp.up_proj.weight)
    s, n = _trained_positions_loss()(model)(ids, labels)
    assert int(n) == 8
    assert torch.allclose(s / n, ref, atol=1e-6)
    (g,) = torch.autograd.grad(s / n, model.model.layers[0].mlp.up_proj.weight)
    assert torch.allclose(g, g_ref, atol=1e-6)


def test_lora_sft_on_a_bf16_base_with_recompute_saves_a_merged_fp32_policy(tmp_path):
    base = tiny_policy_dir(tmp_path / "base")
    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, scripted_demos(6))
    cfg = SFTConfig(
        max_steps=3,
        epochs=10,
        batch_size=3,
        lr=1e-2,
        warmup_steps=1,
        lora_r=4,
        bf16=True,
        gradient_checkpointing=True,
        device="cpu",
    )
    res = train_sft(demos, str(base), tmp_path / "pol", cfg)
    assert res.steps == 3 and res.final_loss == res.final_loss  # not NaN
    from safetensors.torch import load_file

    before, after = load_file(str(base / "model.safetensors")), load_file(str(tmp_path / "pol" / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the adapters were merged in


def test_resolve_base_names_the_fix():
    with pytest.raises(UserError, match="neither `tiny`, a preset"):
        resolve_base("no/such/dir", "runs/x/policy")
    assert resolve_base("tiny", "runs/x/policy") == "tiny"


def test_micro_batches_give_the_whole_batch_update(tmp_path):
    """Gradient accumulation over micro batches (uneven: 2 + 2 + 1 rows of a 5-row batch) is the same
    optimiser step as the whole batch: one loss normaliser, the batch's trained tokens."""
    from safetensors.torch import load_file

    base = tiny_policy_dir(tmp_path / "base")
    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, scripted_demos(10))
    out = {}
    for micro in (None, 2):
        cfg = SFTConfig(max_steps=2, epochs=10, batch_size=5, micro_batch_size=micro, lr=1e-2, warmup_steps=1)
        res = train_sft(demos, str(base), tmp_path / f"pol{micro}", cfg, report_to="none")
        out[micro] = (res.final_loss, load_file(str(tmp_path / f"pol{micro}" / "model.safetensors")))
    (loss_a, a), (loss_b, b) = out[None], out[2]
    assert loss_a == pytest.approx(loss_b, abs=1e-5)
    before = load_file(str(base / "model.safetensors"))
    assert any(not torch.equal(before[k], a[k]) for k in a)  # it trained
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    with pytest.raises(UserError, match="micro_batch_size 0"):
        train_sft(demos, str(base), tmp_path / "bad", SFTConfig(max_steps=1, micro_batch_size=0))
