"""Stage `download`: generate the embedded benchmark, or verify and convert a real dataset under data/."""

from typing import Any

from vila.data import download


def main(params: dict[str, Any]) -> None:
    download.run(params)
