"""Stage `sevila_uniform_answerer`: the ablation sevila_4f_uniform_answerer, the uniform-trained Answerer with the
trained Localizer (SeViLA without its Answerer fine-tuning on key frames)."""

from typing import Any

from vila import sevila


def main(params: dict[str, Any]) -> None:
    sevila.run_sevila(params, sevila.LABELS_FROM, uniform_answerer=True)
