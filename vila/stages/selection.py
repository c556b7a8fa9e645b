"""Stage `selection`: the selection study's report, reports/selection.html (notebooks/selection.ipynb)."""

from typing import Any

from vila import report


def main(params: dict[str, Any], params_file: str = "params.yaml") -> None:
    report.render(("selection",), params, params_file)
