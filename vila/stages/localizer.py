"""Stage `localizer`: SeViLA's Localizer, trained on the pseudo-labels (only the Localizer learns)."""

from typing import Any

from vila import sevila


def main(params: dict[str, Any]) -> None:
    sevila.run_localizer(params)
