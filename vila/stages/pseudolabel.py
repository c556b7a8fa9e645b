"""Stage `pseudolabel`: SeViLA's self-refinement labels, each frame of each training question read alone
by the frozen 4-frame Answerer."""

from typing import Any

from vila import sevila


def main(params: dict[str, Any]) -> None:
    sevila.run_pseudolabel(params)
