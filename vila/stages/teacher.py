"""Stage `teacher` (one job per N of train.teacher.frames): fine-tune the uniform-N-frame model."""

from typing import Any

from vila import train_models


def main(params: dict[str, Any], frames: int) -> None:
    train_models.run_teacher(params, frames)
