"""Stage `speed`: latency, per-step breakdown, FLOPs and peak memory of every variant, in one process."""

from typing import Any

from vila import speed


def main(params: dict[str, Any]) -> None:
    speed.run(params)
