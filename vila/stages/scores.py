"""Stage `scores` (one job per source of selection.scorers): per-frame relevance scores of every val and test
question, and their key-frame AUC."""

from typing import Any

from vila import selector_study


def main(params: dict[str, Any], scorer: str) -> None:
    selector_study.run_scores(params, scorer)
