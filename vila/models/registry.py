"""The models the DAG trains and evaluates: their names and kinds, one definition derived from params.yaml.

Every model is a directory models/<dataset>/<name> (vila/paths.py); its name says what it is: `uniform_<n>f` a
teacher fine-tuned on n uniform frames, a key of params.yaml's `variants` a ViLA student, `sevila_<k>f` SeViLA
with k key frames, and SeViLA's ablations (SEVILA_ABLATIONS). Params validation, the stage list, the stages,
the comparisons and the reports ask this module; none of them spells a name itself.
"""

from __future__ import annotations

from typing import Any

SEVILA_K = 4  # SeViLA's k: its key frames (sevila_4f, the baseline of the claims); its ablations and labeller read k


def teacher_name(frames: int | str) -> str:
    """A model fine-tuned on `frames` uniformly sampled frames (a teacher; the distillation's at data.frames)."""
    return f"uniform_{frames}f"


def sevila_name(frames: int | str) -> str:
    """SeViLA reading its Localizer's `frames` key frames."""
    return f"sevila_{frames}f"


def sevila_answerer(frames: int | str, uniform: bool = False) -> str:
    """SeViLA's Answerer trained on the Localizer's frames (its method), or on uniform ones (an ablation's)."""
    return f"sevila_answerer_uniform_{frames}f" if uniform else f"sevila_answerer_{frames}f"


def reader_name(frames: int | str) -> str:
    """The selection study's shared answerer for budget k."""
    return f"reader_{frames}f"


SPEED_REFERENCE = sevila_name(SEVILA_K)  # the baseline of the paper's claims and of its speed-ups
SEVILA_PRETRAINED = "sevila_localizer_pretrained"  # the Localizer after moment-retrieval pre-training (step 1)
STUDENT_INIT = "vila_init"  # re_weight's output: every student starts from it
# SeViLA's Localizer (vila/training/sevila.py): by its whole recipe (pre-trained on moment retrieval, refined on the
# zero-shot Answerer's pseudo-labels), and without one piece each: the ablations measure what a piece is worth.
LOCALIZERS = {
    "sevila_localizer": {"pretrained": True, "labeller": "zero_shot"},
    "sevila_localizer_no_pretrain": {"pretrained": False, "labeller": "zero_shot"},
    "sevila_localizer_finetuned_labeller": {"pretrained": True, "labeller": "uniform_answerer"},
}
# The ablation models: name -> (Answerer, Localizer). The Answerer is held fixed (sevila_answerer_4f, trained on the
# full recipe's key frames) so a row measures its Localizer alone; the last keeps the full Localizer and takes the
# Answerer fine-tuned on uniform frames (SeViLA without its Answerer fine-tuning).
SEVILA_ABLATIONS = {
    f"{SPEED_REFERENCE}_no_loc_pretrain": (sevila_answerer(SEVILA_K), "sevila_localizer_no_pretrain"),
    f"{SPEED_REFERENCE}_finetuned_labeller": (sevila_answerer(SEVILA_K), "sevila_localizer_finetuned_labeller"),
    f"{SPEED_REFERENCE}_uniform_answerer": (sevila_answerer(SEVILA_K, uniform=True), "sevila_localizer"),
}


def speedup_key(model: str, reference: str) -> str:
    """The key of a pair in speed.json's speed-ups, the comparisons and the reports: `model` against `reference`."""
    return f"{model}_vs_{reference}"


def reweight_teachers(params: dict[str, Any]) -> tuple[str, str]:
    """The two teachers re_weight builds the student from: the one reading train.student.select frames (the
    student's own answerer) and the one reading every sampled frame (the distillation's teacher branch)."""
    return teacher_name(params["train"]["student"]["select"]), teacher_name(params["data"]["frames"])


def references(params: dict[str, Any]) -> tuple[str, str]:
    """The two models every other is compared with: the uniform model that reads every sampled frame (the
    distillation's teacher) and SeViLA at its k (the baseline of the paper's claims)."""
    return teacher_name(params["data"]["frames"]), SPEED_REFERENCE


def model_kinds(params: dict[str, Any]) -> dict[str, str]:
    """Every model the DAG trains and evaluates, in table order, with its kind: the uniform
    teachers, the ViLA student variants, SeViLA at each k, and SeViLA's ablations."""
    kinds = {teacher_name(n): "teacher" for n in params["train"]["teacher"]["frames"]}
    kinds |= {v: "student" for v in params["variants"]}
    kinds |= {sevila_name(k): "sevila" for k in params["sevila"]["frames"]}
    kinds |= {name: "sevila_ablation" for name in SEVILA_ABLATIONS}
    return kinds


def model_names(params: dict[str, Any]) -> list[str]:
    """Every model the DAG trains and evaluates, in table order (model_kinds)."""
    return list(model_kinds(params))
