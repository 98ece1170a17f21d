"""The config loader under generated YAML (issue 21 item 5): any mapping (wrong types, nested junk, unknown
keys, negative or huge numbers, nulls, lists for scalars) either loads to a config whose fields have their
declared types, or raises UserError (one line, exit 2 in the CLI), never another exception."""

from __future__ import annotations

import dataclasses
import math

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentprm.errors import UserError
from agentprm.pipeline import PipelineConfig
from agentprm.policy.sft import SFTConfig
from agentprm.policy.tiny import TinyPolicyConfig
from agentprm.prm.train import PRMTrainConfig

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, -1, 2, 10**18, -(10**18), 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "agentprm",
            "pvm",
            "orm",
            "mc",
            "tiny",
            "paper",
            "auto",
            "2x2",
            "4x4",
            "cpu",
            "textcraft",
            "babyai",
            "none",
            "full",
            "1e-3",
            "yes",
            "",
            "0x0",
            "-2x2",
            "16",
            "float32",
        ]
    ),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=8,
)


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def section(cls: type, nested: dict[str, st.SearchStrategy] | None = None) -> st.SearchStrategy:
    keys = st.sampled_from(_names(cls)) | st.text(min_size=1, max_size=8)  # mostly real keys, some unknown
    values = junk if not nested else st.one_of(junk, *nested.values())
    return st.dictionaries(keys, values, max_size=6)


sft_section = section(SFTConfig, {"tiny": section(TinyPolicyConfig)}).map(
    lambda d: {**d, "tiny": d["tiny"]} if "tiny" in d else d
)
configs = st.dictionaries(
    st.sampled_from(_names(PipelineConfig)) | st.text(min_size=1, max_size=8),
    st.one_of(junk, sft_section, section(PRMTrainConfig)),
    max_size=8,
)

_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_types(obj: object) -> None:
    """Every scalar field of a loaded config has its declared type (a config that loads is a valid one)."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            _check_types(v)
            continue
        parts = [p.strip() for p in str(f.type).split("|")]
        if v is None:
            assert "None" in parts, (f.name, v)
            continue
        if parts[0].startswith("list["):
            assert isinstance(v, list), (f.name, v)
            inner = parts[0][5:-1]
            assert all(isinstance(x, _TYPES.get(inner, object)) and not isinstance(x, bool) for x in v), (f.name, v)
            continue
        known = [p for p in parts if p in _TYPES]
        if known:
            assert any(isinstance(v, t) for p in known for t in _TYPES[p]), (f.name, v)
            if "bool" not in known:
                assert not isinstance(v, bool), (f.name, v)
        if isinstance(v, float):
            assert not math.isnan(v), (f.name, v)


def _load(data: dict) -> None:
    try:
        cfg = PipelineConfig.from_dict(data)
    except UserError:
        return
    _check_types(cfg)
    for objective in cfg.objectives:  # every PRM the pipeline will train has a valid config
        dataclasses.replace(cfg.prm, objective=objective).validate()
    assert cfg.bon >= 1 and len(cfg.beam_budgets()) <= len(cfg.beams)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_from_dict_loads_or_raises_user_error(data):
    _load(data)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(configs)
def test_load_from_yaml_file_loads_or_raises_user_error(tmp_path, data):
    path = tmp_path / "fuzz.yaml"
    try:
        path.write_text(yaml.safe_dump(data))
    except (yaml.YAMLError, UnicodeEncodeError):
        return  # not representable as YAML text: not a config a user could write
    try:
        cfg = PipelineConfig.load(path)
    except UserError as e:
        assert str(path) in str(e) or "config" in str(e)
        return
    _check_types(cfg)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80) | st.binary(max_size=40))
def test_arbitrary_yaml_text_loads_or_raises_user_error(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        PipelineConfig.load(path)
    except UserError:
        pass
