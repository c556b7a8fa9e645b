"""Stage `answerer` (one job per k of sevila.frames): SeViLA's Answerer, fine-tuned on k uniform frames
with `Frame {i}: ` marks."""

from typing import Any

from vila import sevila


def main(params: dict[str, Any], frames: int) -> None:
    sevila.run_answerer(params, frames)
