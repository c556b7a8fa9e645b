"""Stage `evaluate_student`: accuracy per type, key-frame recall and chosen frames of one student model."""

from typing import Any

from vila import evaluation


def main(params: dict[str, Any], variant: str) -> None:
    evaluation.run(params, variant)
