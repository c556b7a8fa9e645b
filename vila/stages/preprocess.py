"""Stage `preprocess`: decode every clip once into the frame cache, at the size the model reads."""

from typing import Any

from vila.data import preprocess
from vila.models.presets import PRESETS


def frame_size(params: dict[str, Any]) -> int:
    """Side of the cached frames: synthqa's rendered size, or the ViT's input size of the model preset."""
    if params["dataset"] == "synthqa":
        return params["data"]["synthqa"]["size"]
    return PRESETS[params["model"]["preset"]]["vision_config"]["image_size"]


def main(params: dict[str, Any]) -> None:
    preprocess.run(params, frame_size(params))
