"""Stage `summary`: the small metrics file DVC reads (accuracy and key-frame recall per variant, speed-ups)."""

from typing import Any

from vila import summary


def main(params: dict[str, Any]) -> None:
    summary.run(params)
