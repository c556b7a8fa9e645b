"""Stage `report`: execute the notebooks with papermill and render reports/*.html."""

from typing import Any

from vila import report


def main(params: dict[str, Any], params_file: str = "params.yaml") -> None:
    report.run(params, params_file)
