"""Stage `select` (one job per selector and k of selection.frames): the selector's k frames of every test
question, read by the shared answerer (the frozen reader_<k>f)."""

from typing import Any

from vila import selector_study


def main(params: dict[str, Any], selector: str, budget: int) -> None:
    selector_study.run_select(params, selector, int(budget))
