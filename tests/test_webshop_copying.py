"""WebShop's copying fix: the env takes a product id in either case with the same result; the oracle's
`page` style clicks ids as the page shows them; the tokenizer's `split_ids` cuts ids into the same
characters wherever they appear, so a clicked id's tokens are the page's (envs/webshop/copying.py)."""

from __future__ import annotations

import pytest

from agentprm.conversation import trajectory_messages
from agentprm.envs.webshop.copying import copy_stats
from agentprm.envs.webshop.env import WebShopEnv
from agentprm.envs.webshop.expert import expert_trajectory
from agentprm.errors import UserError
from agentprm.policy.tiny import TinyPolicyConfig, build_tokenizer

N_DEMOS = 12


@pytest.fixture(scope="module")
def env() -> WebShopEnv:
    return WebShopEnv()


@pytest.fixture(scope="module")
def demos(env):
    ids = env.task_ids("train", N_DEMOS)
    return {style: [expert_trajectory(env, t, 0, style) for t in ids] for style in ("full", "page")}


def test_env_takes_an_id_in_either_case_with_the_same_pages_and_reward(env):
    env.reset("webshop_3")
    env.step(f"search[{env.goal.instruction_text}]")
    asin = env.page_products()[0]
    assert asin != asin.lower()
    results = env.clone()
    pages, rewards = [], []
    for arg in (asin, asin.lower()):
        e = results.clone()
        res = e.step(f"click[{arg}]")
        assert res.info["valid"] and e.s.page == "item" and e.s.asin == asin
        pages.append(res.observation)
        res = e.step("click[Buy Now]")  # the page's own case, as the `page` style writes it
        assert res.done and res.info["valid"]
        rewards.append(res.reward)
    assert pages[0] == pages[1] and rewards[0] == rewards[1]
    assert not results.clone().step(f"click[{asin[:-1]}]").info["valid"]  # a wrong id stays invalid


def test_page_style_clicks_as_shown_and_earns_the_same(demos):
    full, page = demos["full"], demos["page"]
    assert sum(t.success for t in page) >= N_DEMOS - 1
    clicked_ids = 0
    for a, b in zip(full, page):
        assert [s.action.lower() for s in a.steps] == [s.action.lower() for s in b.steps]
        assert [s.observation for s in a.steps] == [s.observation for s in b.steps]
        assert (a.reward, a.success) == (b.reward, b.success)
        for s in b.steps:
            arg = s.action[len("click[") : -1] if s.action.startswith("click[") else None
            if arg and arg.upper() == arg and any(c.isdigit() for c in arg) and any(c.isalpha() for c in arg):
                clicked_ids += 1
                assert f" [SEP] {arg} [SEP] " in s.observation  # written exactly as the page shows it
        assert b.steps[-1].action == "click[Buy Now]" and a.steps[-1].action == "click[buy now]"
    assert clicked_ids == sum(1 for t in page for s in t.steps if "looks like" in s.output)
    with pytest.raises(UserError, match="thought style"):
        expert_trajectory(WebShopEnv(), "webshop_0", 0, "shouting")


def _tok(trajs, **kw):
    return build_tokenizer([trajectory_messages(t) for t in trajs], TinyPolicyConfig(**kw))


@pytest.mark.parametrize("merge", ["word", "phrase"])
def test_split_ids_makes_every_clicked_id_a_verbatim_copy(demos, merge):
    # Today's demos and tokenizer: the lower-case click is never the page's tokens.
    before = copy_stats(_tok(demos["full"], tokenizer_merge=merge), demos["full"])
    assert before.clicks >= N_DEMOS and before.copyable == 0
    # Page-case clicks alone: the id's inner pieces match, its first one does not (" B" on the page, "B" in
    # the action), so the whole sequence is not on the page either.
    page_only = copy_stats(_tok(demos["page"], tokenizer_merge=merge), demos["page"])
    assert page_only.same_as_page == 0
    fixed = copy_stats(_tok(demos["page"], tokenizer_merge=merge, split_ids=True), demos["page"])
    assert fixed.clicks == page_only.clicks
    assert fixed.copyable == fixed.same_as_page == fixed.from_thought == fixed.clicks
    assert fixed.action_pieces == fixed.page_pieces == 10 * fixed.clicks  # one token per character
    # With lower-case clicks the pieces are still single characters, of the other case.
    lower = copy_stats(_tok(demos["full"], tokenizer_merge=merge, split_ids=True), demos["full"])
    assert lower.copyable == 0 and lower.action_pieces == 10 * lower.clicks


def test_split_ids_leaves_other_text_alone_and_survives_save_and_load(demos, tmp_path):
    from transformers import AutoTokenizer

    trajs = demos["page"]
    word, split = _tok(trajs), _tok(trajs, split_ids=True)
    pre = split.backend_tokenizer.pre_tokenizer.pre_tokenize_str
    text = "Price: $18.99 [SEP] 60Hz 1080P TV, 16 x 16 inch, x-large [SEP] b0UAUZTD1s [SEP] abc123def"
    pieces = [p for p, _ in pre(text)]
    assert pieces[-23:] == [*"b0UAUZTD1s", "Ġ[", "SEP", "]", "Ġ", *"abc123def"]  # mixed case too; the space alone
    ids_at = [p for p, _ in pre("click[B0UAUZTD1S]")]
    assert ids_at == ["click", "[", *"B0UAUZTD1S", "]"]
    assert [p for p, _ in pre(" [SEP] B0UAUZTD1S [SEP] ")][3:14] == ["Ġ", *"B0UAUZTD1S"]
    # Text without ids cuts as the word mode cuts it.
    plain = "Price: $18.99 [SEP] 60Hz 1080P TV, 16 x 16 inch, x-large"
    assert [p for p, _ in pre(plain)] == [p for p, _ in word.backend_tokenizer.pre_tokenizer.pre_tokenize_str(plain)]
    for t in [text, *(m["content"] for m in trajectory_messages(trajs[0]))]:
        assert split.decode(split(t, add_special_tokens=False)["input_ids"]) == t
    split.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    conv = trajectory_messages(trajs[1])
    assert loaded.apply_chat_template(conv) == split.apply_chat_template(conv)


def test_split_ids_travels_from_config_and_keeps_old_sft_keys():
    from dataclasses import replace

    from agentprm.pipeline import Pipeline
    from agentprm.pipeline_config import PipelineConfig

    cfg = PipelineConfig.from_dict({"env": "webshop"})
    assert cfg.sft.tiny.split_ids is False
    on = PipelineConfig.from_dict({"env": "webshop", "sft": {"tiny": {"split_ids": True}}})
    assert on.sft.tiny.split_ids is True
    off = replace(cfg, sft=replace(cfg.sft, tiny=replace(cfg.sft.tiny, split_ids=False)))
    assert Pipeline(off, "/x").sft_key() == Pipeline(cfg, "/x").sft_key()
    assert Pipeline(on, "/x").sft_key() != Pipeline(cfg, "/x").sft_key()


def test_sft_cli_split_ids(tmp_path):
    from typer.testing import CliRunner

    from agentprm.cli import app
    from agentprm.testing.policies import scripted_demos
    from agentprm.trajectory import write_trajectories

    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, scripted_demos(4))
    small = ["--max-steps", "1", "--batch-size", "4", "--hidden", "16", "--layers", "1", "--heads", "2"]
    pol = tmp_path / "policy"
    r = CliRunner().invoke(app, ["sft", "--demos", str(demos), "--out", str(pol), "--split-ids", *small])
    assert r.exit_code == 0, r.output
    saved = (pol / "tokenizer.json").read_text()
    assert r"\\G(?!\\A)" in saved  # the id splitter travels with the saved tokenizer
