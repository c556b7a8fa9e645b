"""Stage `reader` (one job per k of selection.frames): the selection study's shared answerer, trained on a mix of
uniform, random and relevance-drawn frame sets so that it can read whatever frames a selector hands it."""

from typing import Any

from vila import selector_study


def main(params: dict[str, Any], budget: int) -> None:
    selector_study.run_reader(params, int(budget))
