"""Stage `localize`: the trained Localizer's score of every frame of every train and val question."""

from typing import Any

from vila import sevila


def main(params: dict[str, Any]) -> None:
    sevila.run_localize(params)
