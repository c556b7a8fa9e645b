"""Stage `sevila` (one job per k of sevila.frames): sevila_<k>f, the k-frame Answerer with the trained Localizer."""

from typing import Any

from vila import sevila


def main(params: dict[str, Any], frames: int) -> None:
    sevila.run_sevila(params, frames)
