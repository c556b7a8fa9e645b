"""Stage `student` (one job per key of `variants`): train a ViLA student variant."""

from typing import Any

from vila import train_models


def main(params: dict[str, Any], variant: str) -> None:
    train_models.run_student(params, variant)
