"""How well a tokenizer lets a WebShop policy copy: are the tokens an action writes the tokens it has read?

A product click names an id the results page shows (`click[B0UAUZTD1S]`); a search names the instruction's
words. A from-scratch model copies a string easily when the action's tokens for it occur verbatim in the
context, and badly when they must be rewritten into other tokens (another case, another BPE cut). This
module measures that on demos, token for token, as the model sees them (the chat-templated conversation):
`benchmarks/webshop_copy.py` prints it for the expert's styles and the tokenizer's options.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from agentprm.conversation import trajectory_messages
from agentprm.trajectory import Trajectory

# A clicked product id: the click's whole argument, letters and digits with both present (ASIN-like).
_ID_ARG = re.compile(r"click\[((?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{6,})\]")
_SEARCH_ARG = re.compile(r"search\[(.+)\]")


@dataclass
class CopyStats:
    clicks: int = 0  # product clicks checked
    copyable: int = 0  # the action's id tokens occur verbatim in the observation it answers
    same_as_page: int = 0  # ... and are the very tokens the id has at its place on that page
    from_thought: int = 0  # the action's id tokens occur verbatim earlier in the same turn (the thought)
    action_pieces: int = 0  # tokens of the ids in actions, summed
    page_pieces: int = 0  # tokens of the ids where the page shows them, summed
    searches: int = 0
    query_verbatim: int = 0  # the query's tokens occur verbatim in the observation (the instruction)
    query_tail_verbatim: int = 0  # ... all but its first token (which follows "[" in the action, a space on the page)
    query_run: float = 0.0  # summed share of each query's tokens in its longest run shared with the observation
    demo_tokens: int = 0  # tokens of the whole conversations, summed
    demos: int = 0

    def rates(self) -> dict[str, float]:
        c, s = max(self.clicks, 1), max(self.searches, 1)
        return {
            "clicks": self.clicks,
            "id copyable from page": self.copyable / c,
            "id tokens same as on page": self.same_as_page / c,
            "id copyable from thought": self.from_thought / c,
            "id pieces (action)": self.action_pieces / c,
            "id pieces (page)": self.page_pieces / c,
            "query verbatim": self.query_verbatim / s,
            "query verbatim but its first token": self.query_tail_verbatim / s,
            "query longest shared run": self.query_run / s,
            "tokens per demo": self.demo_tokens / max(self.demos, 1),
        }


def _contains(seq: list[int], part: list[int]) -> bool:
    n = len(part)
    return n > 0 and any(seq[i : i + n] == part for i in range(len(seq) - n + 1))


def _longest_shared_run(seq: list[int], part: list[int]) -> int:
    """Length of the longest contiguous run of `part` that occurs in `seq` (dynamic programming)."""
    best, prev = 0, [0] * (len(seq) + 1)
    for p in part:
        cur = [0] * (len(seq) + 1)
        for j, s in enumerate(seq, 1):
            if s == p:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


class _Encoded:
    """One conversation tokenised as the model sees it, with each message's character span."""

    def __init__(self, tokenizer, messages: list[dict]) -> None:
        self.text = tokenizer.apply_chat_template(messages, tokenize=False)
        enc = tokenizer(self.text, add_special_tokens=False, return_offsets_mapping=True)
        self.ids: list[int] = enc["input_ids"]
        self.offsets: list[tuple[int, int]] = enc["offset_mapping"]
        self.spans: list[tuple[int, int]] = []
        pos = 0
        for m in messages:
            start = self.text.index(m["content"], pos)
            self.spans.append((start, start + len(m["content"])))
            pos = start + len(m["content"])

    def positions(self, start: int, end: int) -> list[int]:
        """The indices of the tokens that overlap text[start:end]."""
        return [i for i, (a, b) in enumerate(self.offsets) if a < end and b > start and b > a]

    def tokens(self, start: int, end: int) -> list[int]:
        """The ids of the tokens that overlap text[start:end]."""
        return [self.ids[i] for i in self.positions(start, end)]


def id_click_positions(tokenizer, traj: Trajectory) -> tuple[list[int], list[tuple[list[int], list[int]]]]:
    """(token ids of the templated conversation, per product click: (the token indices of the id in the
    thought, in the action)); what a teacher-forced check of copying scores."""
    msgs = trajectory_messages(traj)
    enc = _Encoded(tokenizer, msgs)
    turns = [i for i, m in enumerate(msgs) if m["role"] == "assistant"][1:]
    out = []
    for step, i in zip(traj.steps, turns):
        if m := _ID_ARG.fullmatch(step.action):
            out_start, _ = enc.spans[i]
            act_at = out_start + step.output.rindex(step.action)
            said = step.output.upper().find(m.group(1).upper())
            thought = enc.positions(out_start + said, out_start + said + len(m.group(1))) if said >= 0 else []
            out.append((thought, enc.positions(act_at + m.start(1), act_at + m.end(1))))
    return enc.ids, out


def copy_stats(tokenizer, trajs: Iterable[Trajectory]) -> CopyStats:
    """`CopyStats` of `trajs` (WebShop demos) under `tokenizer` (an HF tokenizer with a chat template)."""
    st = CopyStats()
    for traj in trajs:
        msgs = trajectory_messages(traj)
        enc = _Encoded(tokenizer, msgs)
        st.demos += 1
        st.demo_tokens += len(enc.ids)
        turns = [i for i, m in enumerate(msgs) if m["role"] == "assistant"][1:]  # not the prompt's "OK."
        for step, i in zip(traj.steps, turns):
            out_start, _ = enc.spans[i]
            obs_start, obs_end = enc.spans[i - 1]
            obs_text, obs_ids = msgs[i - 1]["content"], enc.tokens(obs_start, obs_end)
            act_at = out_start + step.output.rindex(step.action)
            if m := _ID_ARG.fullmatch(step.action):
                st.clicks += 1
                a, b = act_at + m.start(1), act_at + m.end(1)
                want = enc.tokens(a, b)
                st.action_pieces += len(want)
                st.copyable += _contains(obs_ids, want)
                st.from_thought += _contains(enc.tokens(out_start, act_at), want)
                shown = [obs_start + w.start() for w in re.finditer(re.escape(m.group(1)), obs_text, re.IGNORECASE)]
                if shown:
                    page = enc.tokens(shown[0], shown[0] + len(m.group(1)))
                    st.page_pieces += len(page)
                    st.same_as_page += page == want
            elif m := _SEARCH_ARG.fullmatch(step.action):
                st.searches += 1
                want = enc.tokens(act_at + m.start(1), act_at + m.end(1))
                st.query_verbatim += _contains(obs_ids, want)
                st.query_tail_verbatim += _contains(obs_ids, want[1:])
                st.query_run += _longest_shared_run(obs_ids, want) / max(len(want), 1)
    return st
