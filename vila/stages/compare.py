"""Stage `compare`: paired bootstrap intervals and McNemar tests of every comparison, a verdict per claim."""

from typing import Any

from vila import compare


def main(params: dict[str, Any]) -> None:
    compare.run(params)
