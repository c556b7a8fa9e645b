"""Stage `evaluate_sevila`: accuracy per type, key-frame recall of the Localizer's choice and chosen frames of
one SeViLA model."""

from typing import Any

from vila import evaluation


def main(params: dict[str, Any], variant: str) -> None:
    evaluation.run(params, variant)
