"""Stage `seeds`: the seed study's summary across seeds (study/results/<dataset>/comparisons.json, reports/seeds.html)."""

from typing import Any

from vila import report, seeds


def main(params: dict[str, Any], params_file: str = "params.yaml") -> None:
    seeds.run(params)
    report.render(("seeds",), params, params_file)
