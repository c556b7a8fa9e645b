"""Stage `uniform_answerer`: SeViLA's 4-frame Answerer fine-tuned on uniform frames, with `Frame {i}: ` marks; it
labels the frames the Localizer learns from (and reads the Localizer's frames in the ablation)."""

from typing import Any

from vila import sevila


def main(params: dict[str, Any]) -> None:
    sevila.run_uniform_answerer(params)
