"""Stage `reweight`: the student's starting point, the 4-frame model plus the 32-frame model's teacher branch."""

from typing import Any

from vila import train_models


def main(params: dict[str, Any]) -> None:
    train_models.run_reweight(params)
