"""Where every stage reads and writes: one place for the project's layout.

data/ holds raw inputs only (tracked whole by data.dvc); every product lives beside it, because
DVC refuses a stage output inside a tracked folder.

The seed study (params `seeds_study`) trains and evaluates the claims' models again at other seeds, each with a
backbone of its own: the backbone, its feature cache, the models, pseudo-labels, checkpoints, eval JSONs and
comparisons of seed S live under study/seeds/S/ in the same layout (study/seeds/S/models/<dataset>/vila_4f, ...),
outside the folders the default seed's stages read, so running the study makes nothing of Table 1 stale. What does
not depend on the seed is shared: the data, the decode cache, the speed figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPLITS = ("train", "val", "test")  # every dataset's question splits (annotations/<split>.json, caches per split)
# clips decoded and encoded: the question splits, and synthqa's moment-retrieval set (SeViLA's Localizer pre-training)
MOMENTS_SPLIT = "moments"
CLIP_SPLITS = (*SPLITS, MOMENTS_SPLIT)
STUDY = Path("study")  # the seed study: its dvc.yaml, each seed's outputs, the summary across seeds
STUDY_SEEDS = STUDY / "seeds"
FULLSIZE_SPEED = Path("results") / "fullsize" / "speed.json"  # `vila speed-full`: the full-size architecture on a GPU
LOGS_DIR = Path("logs")  # each job's log (logs/<dataset>/<job>.log, Snakemake's), tracebacks/ (vila's)
LIVE_DIR = "dvclive"  # a trained model's DVCLive log, inside its directory (its training curves)
PAPER_FIGURES = Path("paper-figures.yaml")  # the paper's reference figures (the reports and the verdicts read them)
NOTEBOOKS_DIR, REPORTS_DIR = Path("notebooks"), Path("reports")  # notebooks/<name>.ipynb renders reports/<name>.html
# The `report` stage's pages (the seed and selection studies render their own: seeds, selection)
REPORT_PAGES = ("index", "table1", "table2", "speed", "training", "benchmark")


def notebook(name: str) -> Path:
    return NOTEBOOKS_DIR / f"{name}.ipynb"


def report(name: str) -> Path:
    return REPORTS_DIR / f"{name}.html"


def study_root(seed: int | str) -> Path:
    return STUDY_SEEDS / str(seed)


@dataclass(frozen=True)
class Paths:
    dataset: str
    raw_root: Path = Path("data")
    study_seed: int | None = None  # a seed of the seed study (vila.config.at_seed); None: the default seed

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Paths:
        return cls(params["dataset"], Path(params["data"]["raw_dir"]), params.get("study_seed"))

    def _seeded(self, root: Path) -> Path:
        return root if self.study_seed is None else study_root(self.study_seed) / root

    def for_seed(self, seed: int | None) -> Paths:
        return Paths(self.dataset, self.raw_root, seed)

    def job_log(self, job: str) -> Path:  # a Snakemake job's log: its stage name and wildcards
        return LOGS_DIR / self.dataset / f"{job}.log"

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
        return self._seeded(Path("work") / self.dataset) / "features"

    def pseudo_labels(self, labeller: str) -> Path:  # pseudolabel: SeViLA's per-frame yes/no labels by one labeller
        return self._seeded(Path("work") / self.dataset) / f"pseudo_labels_{labeller}"

    @property
    def localized(self) -> Path:  # localize: SeViLA's trained Localizer's frame scores of the train and val questions
        return self._seeded(Path("work") / self.dataset) / "localized"

    def checkpoints(self, run: str) -> Path:  # resumable training state (not a stage output)
        return self._seeded(Path("work") / self.dataset) / "checkpoints" / run

    @property
    def models_dir(self) -> Path:  # every model of Table 1's DAG (the speed and report stages read it whole)
        return self._seeded(Path("models") / self.dataset)

    def model(self, name: str) -> Path:
        return self.models_dir / name

    def curve(self, name: str, metric: str) -> Path:  # a model's training curve: metric "train/loss", "val/accuracy"
        return self.model(name) / LIVE_DIR / "plots" / "metrics" / f"{metric}.tsv"

    @property
    def readers_dir(self) -> Path:
        """The selection study's shared answerers: outside models/<dataset>/, which Table 1's report and speed stages
        read whole (a reader there would make them stale after a selection run)."""
        return Path("models") / "selection" / self.dataset

    def reader(self, k: int | str) -> Path:
        from vila.models.registry import reader_name

        return self.readers_dir / reader_name(k)

    @property
    def results(self) -> Path:  # the default seed's: speed.json and metrics.json live here
        return Path("results") / self.dataset

    @property
    def eval_dir(self) -> Path:
        return self._seeded(self.results) / "eval"

    def eval_json(self, variant: str) -> Path:
        return self.eval_dir / f"{variant}.json"

    @property
    def scores_dir(self) -> Path:  # scores: per-frame relevance of every val/test question, one file per source
        return Path("work") / self.dataset / "scores"

    def scores(self, source: str) -> Path:
        return self.scores_dir / f"{source}.npz"

    @property
    def scores_meta_dir(self) -> Path:
        return self.results / "scores"

    def scores_meta(self, source: str) -> Path:  # what the score is, its key-frame AUC
        return self.scores_meta_dir / f"{source}.json"

    @property
    def selection_dir(self) -> Path:  # select: the shared answerer's results, one per (selector, k)
        return self.results / "selection"

    def selection_json(self, selector: str, k: int | str) -> Path:
        return self.selection_dir / f"{selector}_{k}f.json"

    @property
    def metrics_dir(self) -> Path:  # summary: the metrics DVC reads, one file per model
        return self.results / "metrics"

    @property
    def speed_json(self) -> Path:
        return self.results / "speed.json"

    @property
    def comparisons_json(self) -> Path:
        return self._seeded(self.results) / "comparisons.json"

    @property
    def study_comparisons_json(self) -> Path:  # the seed study: comparisons with every seed's figures (vila/evaluation/seeds.py)
        return STUDY / "results" / self.dataset / "comparisons.json"
