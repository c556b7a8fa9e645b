"""Where every stage reads and writes: one place for the project's layout.

data/ holds raw inputs only (tracked whole by data.dvc); every product lives beside it, because
DVC refuses a stage output inside a tracked folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Paths:
    dataset: str
    raw_root: Path = Path("data")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Paths:
        return cls(params["dataset"], Path(params["data"]["raw_dir"]))

    @property
    def raw(self) -> Path:  # real datasets: official files and videos, placed by the user
        return self.raw_root / self.dataset

    @property
    def dataset_dir(self) -> Path:  # download: unified annotations (+ generated clips for synthqa)
        return Path("work") / self.dataset / "dataset"

    def annotations(self, split: str) -> Path:
        return self.dataset_dir / "annotations" / f"{split}.json"

    @property
    def stats(self) -> Path:
        return self.dataset_dir / "stats.json"

    @property
    def frames_dir(self) -> Path:  # preprocess: decode cache (uint8 frames on the sampling grid)
        return Path("work") / self.dataset / "frames"

    @property
    def features_dir(self) -> Path:  # backbone: frozen-ViT feature cache, keyed by backbone hash
        return Path("work") / self.dataset / "features"

    @property
    def pseudo_labels(self) -> Path:  # pseudolabel: SeViLA's per-frame yes/no labels of the training questions
        return Path("work") / self.dataset / "pseudo_labels"

    def checkpoints(self, run: str) -> Path:  # resumable training state (not a stage output)
        return Path("work") / self.dataset / "checkpoints" / run

    def model(self, name: str) -> Path:
        return Path("models") / self.dataset / name

    @property
    def results(self) -> Path:
        return Path("results") / self.dataset

    def eval_json(self, variant: str) -> Path:
        return self.results / "eval" / f"{variant}.json"

    @property
    def speed_json(self) -> Path:
        return self.results / "speed.json"

    @property
    def comparisons_json(self) -> Path:
        return self.results / "comparisons.json"
