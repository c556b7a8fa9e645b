"""The selection study's selectors, one entry each: whose frame scores it reads, how it picks k frames, and which
of its hyper-parameters are chosen on val. params validation (vila/config.py), the study's stages
(vila/selection/study.py) and its report read this table; tests/test_selection.py checks that the params schema's
enum lists exactly these names. A new selector: one entry here and, when no rule of vila/selection/rules.py fits,
its rule there (scores [T], k -> k frames); then its name in params.yaml's selection.selectors. Data only (no
numerics): params validation reads it, so every stage's code depends on this file, and on nothing of the study.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vila.models.registry import SPEED_REFERENCE

# How a selector picks (vila/selection/study.py:choose): the uniform grid; chance; the ground truth; a question-blind
# statistic of the decoded frames (`rule`: a key of vila.data.synthqa.BLIND_STATISTICS), its top k; or a rule on
# cached frame scores (`rule`: a function of vila/selection/rules.py, None: the scores' model's own rule).
KINDS = ("grid", "chance", "ground_truth", "pixels", "scores")


@dataclass(frozen=True)
class Selector:
    name: str
    what: str  # one line: what it reads and how it picks
    kind: str  # one of KINDS
    rule: str | None = None
    # whose frame scores it reads at budget k: None, "backbone" (its image-text match) or a model of the DAG
    scores: str | Callable[[int, dict[str, Any]], str] | None = None
    # the settings to choose among on val, from params' `selection` ([{}]: nothing to choose)
    grid: Callable[[dict[str, Any]], list[dict[str, Any]]] = lambda cfg: [{}]

    @property
    def reads_pixels(self) -> bool:  # it needs the split's decoded frames
        return self.kind == "pixels"


def _prompter_scores(k: int, params: dict[str, Any]) -> str:
    """ViLA's text-gate Prompter at k: the k-frame student where one is trained, else the 4-frame one's scores,
    picked at k."""
    return f"vila_{k}f" if f"vila_{k}f" in params["variants"] else "vila_4f"


def _bolt_grid(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"exponent": float(e)} for e in cfg["bolt_exponents"]]


def _aks_grid(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"depth": int(d), "threshold": float(t)} for d in cfg["aks_depths"] for t in cfg["aks_thresholds"]]


_TABLE = (
    Selector("uniform", "the uniform-k grid (the middle frame of each of k equal intervals)", "grid"),
    Selector("random", "k frames at random (seeded: selection.random_seed)", "chance"),
    Selector("oracle", "the benchmark's ground-truth key frames, padded from the uniform grid (the ceiling of "
             "selection)", "ground_truth"),
    Selector("object_pixels", "question-blind: the k frames with the most pixels off the background (ties at random)",
             "pixels", rule="object_pixels"),
    Selector("frame_difference", "question-blind: the k frames that differ most from the frame before (ties at "
             "random)", "pixels", rule="frame_difference"),
    Selector("similarity_topk", "training-free: the k highest of the backbone's image-text-match score", "scores",
             rule="topk", scores="backbone"),
    Selector("bolt_its", "training-free: BOLT's inverse transform sampling of the image-text-match score (exponent "
             "chosen on val)", "scores", rule="inverse_transform", scores="backbone", grid=_bolt_grid),
    Selector("aks", "training-free: AKS's adaptive split of the image-text-match score (depth and threshold chosen "
             "on val)", "scores", rule="adaptive_split", scores="backbone", grid=_aks_grid),
    Selector("sevila_localizer", "SeViLA's Localizer, top k by its 'yes' logit", "scores", scores=SPEED_REFERENCE),
    Selector("vila_prompter", "ViLA's Frame-Prompter (text gate) by its own rule (one frame per segment)", "scores",
             scores=_prompter_scores),
    Selector("vila_prompter_visual", "ViLA's Frame-Prompter with the released visual gate, by its own rule",
             "scores", scores="vila_4f_visual_gate"),
    Selector("vila_fast", "ViLA's Prompter that selects before the ViT (cheap patch embeddings), by its own rule",
             "scores", scores="vila_4f_fast"),
)
SELECTORS: dict[str, Selector] = {s.name: s for s in _TABLE}


def score_source(selector: str, k: int, params: dict[str, Any]) -> str | None:
    """Whose scores a selector reads at budget k: none, the backbone's image-text match, or a trained model's."""
    source = SELECTORS[selector].scores
    return source(k, params) if callable(source) else source


def candidates(selector: str, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Hyper-parameter settings to choose among on val ([{}]: nothing to choose)."""
    return SELECTORS[selector].grid(cfg)

