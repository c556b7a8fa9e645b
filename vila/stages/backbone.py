"""Stage `backbone`: pretrain (embedded) or load (real weights) the backbone, then cache the frozen-ViT features."""

from typing import Any

from vila import backbone


def main(params: dict[str, Any]) -> None:
    backbone.run(params)
