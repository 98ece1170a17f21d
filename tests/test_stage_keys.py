"""The stage keys pin backwards compatibility of run folders: a run folder records each output's key in
provenance/, and a rerun or `agentprm report` treats an output whose key differs as stale (redone, or left
out of the report). So the keys of a fixed config must stay byte-identical across versions and refactors.

The expected strings below were computed with the code of main at c9701ee (before the keys moved from
agentprm/pipeline.py to agentprm/stage_keys.py) and hard-coded. The whole-config hash ("config") is only
recorded in provenance, never compared for staleness, so it changes with any new config field (it was
re-recorded when `sft.tiny.tokenizer_merge`, `mc_advantage_ablation` and `sft.tiny.split_ids` were added); the stage keys must
not. Session 10 changed the RFT keys on purpose: RFT's default lr schedule changed (`rft_lr`). A change that alters them makes every existing run folder stale: do it only on purpose, say so, and
record the new values here.
"""

import pytest

from agentprm.pipeline import Pipeline
from agentprm.pipeline_config import PipelineConfig
from agentprm.search.budget import Budget
from agentprm.stage_keys import StageKeys

CONFIGS = {
    "textcraft": {
        "env": "textcraft",
        "eval_tasks": 4,
        "collect_tasks": 3,
        "objectives": ["agentprm", "pvm", "orm", "mc"],
        "rft": True,
        "ablation_beta0": True,
        "beams": ["2x2"],
        "bon": 4,
    },
    "babyai-capped": {
        "env": "babyai",
        "max_rounds": 10,
        "eval_tasks": 5,
        "demos": 50,
        "seed": 3,
        "objectives": ["agentprm", "orm"],
        "bon": 8,
        "beams": ["2x2", "4x4"],
    },
}

# Recorded on main at c9701ee, before the move: these pin backwards compatibility of run folders (an
# existing run folder must not be seen as stale). See the module docstring before changing one.
EXPECTED = {
    "textcraft": {
        "config": "794b6dfec4fd4e87",  # informative only; changed with sft.tiny.tokenizer_merge, mc_advantage_ablation, sft.tiny.split_ids, prm.gradient_checkpointing, sft.micro_batch_size, rft_lr
        "demos": "72fc521a7d58d0b2",
        "sft": "61c0c4b2c67cad96",
        "collect": "16e36e9e5d039de8",
        "label": "cf65e9d7d98b1d70",
        "samples": "f523404081176597",
        "rft": "9cf114768b125396",  # session 10: RFT lr schedule (rft_lr) joined the key, on purpose
        "prm agentprm": "89d12379fc6fa10a",
        "prm pvm": "e15abf77522b9b1c",
        "prm orm": "0698acbbbe7a4301",
        "prm mc": "5b09d2b33f92bef1",
        "prm agentprm-beta0": "0b7cf24f15e3fd0e",
        "search greedy": "d65b94abbf27cac2",
        "search greedy rft": "8782b1b36403a558",
        "search bon random": "334d61686eee333e",
        "search bon agentprm": "413993e81a08524b",
        "search beam 2x2 agentprm": "a93c65ecd2821813",
        "search bon pvm": "b04a25e65cbfd684",
        "search beam 2x2 pvm": "2782488ba8fcd4b3",
        "search bon orm": "fce1694c943f7c4d",
        "search beam 2x2 orm": "cceafded552c93d2",
        "search bon mc": "8c57a00040ebee4a",
        "search beam 2x2 mc": "ddbdabea06aa2f1d",
        "search bon agentprm-beta0": "20d2e0ff8e3bec20",
        "search beam 2x2 agentprm-beta0": "d88dc33bf7139cec",
    },
    "babyai-capped": {
        "config": "54cd40d96099200e",  # informative only; changed with sft.tiny.tokenizer_merge, mc_advantage_ablation, sft.tiny.split_ids, prm.gradient_checkpointing, sft.micro_batch_size, rft_lr
        "demos": "3f9a51e8f5f65afe",
        "sft": "4fac4e2555ac3263",
        "collect": "07932e6a568117dd",
        "label": "03b9e5aecccd6952",
        "samples": "557ebd491dd18b4e",
        "rft": "52a5d2169f83d712",  # session 10: rft_lr, on purpose
        "prm agentprm": "5d5fda6c941fdfe1",
        "prm orm": "924cdebef50d1173",
        "search greedy": "5112550ae1aa9425",
        "search greedy rft": "f7ef4948a23b7c69",
        "search bon random": "1c4732e888ed9265",
        "search bon agentprm": "faa8eb1bc93838b9",
        "search beam 2x2 agentprm": "13ba8046983f90be",
        "search beam 4x4 agentprm": "cd2dabd0ec64b2b7",
        "search bon orm": "b6da2aa3aa6ba83c",
        "search beam 2x2 orm": "3211ac919ab41b0b",
        "search beam 4x4 orm": "abe477682b381f48",
    },
}


def all_keys(k: StageKeys) -> dict[str, str]:
    keys = {
        "config": k.config_hash(),
        "demos": k.demos_key(),
        "sft": k.sft_key(),
        "collect": k.collect_key(),
        "label": k.label_key(),
        "samples": k.samples_key(),
        "rft": k.rft_key(),
    }
    rms = k.rm_names()
    keys.update({f"prm {rm}": k.prm_key(rm) for rm in rms})
    keys["search greedy"] = k.search_key("greedy", None, Budget(1))
    keys["search greedy rft"] = k.search_key("greedy", "rft", Budget(1))
    keys["search bon random"] = k.search_key("bon", "random", Budget(k.cfg.bon))
    for rm in rms:
        keys[f"search bon {rm}"] = k.search_key("bon", rm, Budget(k.cfg.bon))
        for b in k.cfg.beam_budgets():
            keys[f"search beam {b} {rm}"] = k.search_key("beam", rm, b)
    return keys


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_stage_keys_are_byte_identical_to_the_recorded_ones(name):
    cfg = PipelineConfig.from_dict(CONFIGS[name])
    assert all_keys(StageKeys(cfg)) == EXPECTED[name]
    # the pipeline that writes the run folder has the same keys (it inherits them)
    pipe = Pipeline(cfg, run_dir="/nonexistent", log=lambda _: None)
    assert pipe.search_key("bon", "random", Budget(cfg.bon)) == EXPECTED[name]["search bon random"]
    assert pipe.collect_key() == EXPECTED[name]["collect"]


# The MC PRM with L_A (`mc_advantage_ablation`), recorded when it was added: its own keys; the flag leaves
# every other stage's key as it was.
MC_LA = {
    "prm mc-la": "c31e9ef58ccabd0b",
    "search bon mc-la": "f1e6a4dd4707b2e6",
    "search beam 2x2 mc-la": "f3e3c9a81b060d11",
}


def test_mc_advantage_ablation_adds_mc_la_and_changes_no_other_key():
    cfg = PipelineConfig.from_dict({**CONFIGS["textcraft"], "mc_advantage_ablation": True})
    keys = StageKeys(cfg)
    assert keys.rm_names() == ["agentprm", "pvm", "orm", "mc", "mc-la", "agentprm-beta0"]
    got = all_keys(keys)
    assert {n: v for n, v in got.items() if n != "config"} == {
        **{n: v for n, v in EXPECTED["textcraft"].items() if n != "config"},
        **MC_LA,
    }
    mc, mc_la = keys.prm_config("mc"), keys.prm_config("mc-la")
    assert (mc.objective, mc.mc_advantage_loss) == ("mc", False)  # the paper's literal MC: L_Q only
    assert (mc_la.objective, mc_la.mc_advantage_loss, mc_la.beta) == ("mc", True, cfg.prm.beta)
    assert keys.uses_mc_labels("mc-la") and not keys.uses_mc_labels("agentprm-beta0")
    # the same MC label stage (one labelling), its own PRM dir, and the same equal-steps epoch scaling as mc
    pipe = Pipeline(cfg, run_dir="/nonexistent", log=lambda _: None)
    stages = {s.name: s for s in pipe.stages()}
    assert "label" in stages["train-prm mc-la"].reads
    assert stages["train-prm mc-la"].output == pipe.prm_dir("mc-la") != pipe.prm_dir("mc")
    assert {"search bon@4 mc-la", "search beam@2x2 mc-la"} <= set(stages)
    # 96 trajectories over batch 8 = 12 steps an epoch for the TD PRMs; 8 MC-labelled ones = 1 step an epoch
    td, scaled = pipe.train_config("agentprm", 96, 8), pipe.train_config("mc-la", 96, 8)
    assert scaled.epochs == td.epochs * 12 == pipe.train_config("mc", 96, 8).epochs and scaled.mc_advantage_loss
    assert PipelineConfig.from_dict(CONFIGS["textcraft"]).mc_advantage_ablation is False  # off unless asked
    assert "mc-la" not in StageKeys(PipelineConfig.from_dict(CONFIGS["textcraft"])).rm_names()


@pytest.mark.parametrize(
    "extra, fix",
    [
        ({"objectives": ["agentprm"]}, "add mc to objectives"),
        ({"prm": {"mc_advantage_loss": True}}, "set prm.mc_advantage_loss: false"),
    ],
)
def test_mc_advantage_ablation_refuses_configs_where_it_means_nothing(extra, fix):
    from agentprm.errors import UserError

    with pytest.raises(UserError, match=fix):
        PipelineConfig.from_dict({**CONFIGS["textcraft"], "mc_advantage_ablation": True, **extra})
