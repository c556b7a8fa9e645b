"""Prompts as the released code writes them; the answer target is "Option X"."""

from __future__ import annotations

from typing import Any

LETTERS = "ABCDE"
MC_SUFFIX = "Considering the information presented in the frame, select the correct answer from the options."
VLEP_QUESTION = "Upon observing the provided frames, what is the most probable subsequent event?"
# SeViLA: the Localizer's question about one frame, the marks before a frame's tokens, and its answers
LOCALIZER_SUFFIX = ("Does the information within the frame provide the necessary details to accurately answer the "
                    "given question?")
LOCALIZER_MARK = "Frame: "
YES, NO = "yes", "no"


def frame_mark(i: int) -> str:
    """What SeViLA's Answerer reads before the tokens of its i-th frame (i from 1)."""
    return f"Frame {i}: "


def options_text(item: dict[str, Any]) -> str:
    return " ".join(f"Option {LETTERS[i]}: {item[f'a{i}']}" for i in range(item["num_option"]))


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def llm_prompt(item: dict[str, Any]) -> str:
    """The T5 prompt. VLEP has no question text: the prompt asks for the next event."""
    if not item.get("question"):
        return _join(VLEP_QUESTION, options_text(item))
    return _join(f"Question: {item['question']}", options_text(item), MC_SUFFIX)


def qformer_prompt(item: dict[str, Any]) -> str:
    """The Q-Former's instruction: the question alone (it selects what to read from each frame)."""
    return item.get("question") or VLEP_QUESTION


def localizer_prompt(item: dict[str, Any]) -> str:
    """SeViLA's Localizer prompt (read after `Frame: ` and one frame's tokens): the question, its options, and
    whether this frame answers it. A moment-retrieval query (its pre-training) has no options."""
    if not item.get("question"):
        return _join(VLEP_QUESTION, options_text(item), LOCALIZER_SUFFIX)
    return _join(f"Question: {item['question']}", options_text(item), LOCALIZER_SUFFIX)
