"""Stage `answerer` (one job per k of sevila.frames): SeViLA's Answerer, fine-tuned on the frozen Localizer's
top-k frames of every training question, in time order, with `Frame {i}: ` marks (its `finetune` step)."""

from typing import Any

from vila import sevila


def main(params: dict[str, Any], frames: int) -> None:
    sevila.run_answerer(params, frames)
