"""Stage `evaluate_sevila_uniform_answerer`: accuracy per type, key-frame recall of the Localizer's choice and
chosen frames of the ablation sevila_4f_uniform_answerer."""

from typing import Any

from vila import evaluation


def main(params: dict[str, Any], variant: str) -> None:
    evaluation.run(params, variant)
