"""The stage list: the one description of the DAG. Everything else is derived from it: the Snakemake rules
(workflow/rules/stages.smk, through the helpers in common.smk), the DVC pipeline files (vila/pipeline/dvcfile.py;
CI checks they are current), the CLI's stage commands, and each stage's code dependencies (vila/pipeline/closure.py:
the import closure of its entry point). tests/test_pipeline.py checks, through each tool's own reading, that
Snakemake's and DVC's views of the DAG agree: same commands, dependencies, params and outputs per job.

A stage names its entry point, `module:function`, which its command calls with the params and the command's
arguments (`vila train teacher --frames 4` -> vila.training.fit:run_teacher(params, frames=4)): a rule, its `vila`
command, the function that does the work.

Placeholders: one value per run, from params (PARAM_PLACEHOLDERS): {dataset}, {student_frames}
(train.student.select), {data_frames} (data.frames); one value per job (wildcards): {frames} (each of
train.teacher.frames), {variant} (each key of `variants`), {keyframes} (each k of sevila.frames), {seed} (each of
seeds_study), {budget} (each k of selection.frames), {scorer} and {selector} (selection.scorers,
selection.selectors). Every path is vila/paths.py's. Params are listed as finely as each stage reads them, so DVC
reruns only what a changed key can affect.

The seed study is derived from the same list: every stage marked `seeded` (what a training seed changes: the
models, their evaluations, the comparisons) has a `<name>_seeds` twin that runs the same command at
`--seed {seed}` with its outputs, and its inputs from seeded stages, under study/seeds/{seed}/; the `seeds`
stage reads every seed's results. Snakemake: `reproduce_seeds`; DVC: study/dvc.yaml (`dvc repro study/dvc.yaml`),
kept apart from dvc.yaml so that a plain `dvc repro` stays the Table 1 DAG.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vila.config import lookup
from vila.models.registry import (
    SEVILA_ABLATIONS,
    SEVILA_K,
    SEVILA_PRETRAINED,
    STUDENT_INIT,
    reweight_teachers,
    sevila_answerer,
    sevila_name,
    teacher_name,
)
from vila.paths import PAPER_FIGURES, REPORT_PAGES, STUDY_SEEDS, Paths, notebook, report, study_root

OPTIM_KEYS = ("batch_size", "lr", "weight_decay", "warmup_steps", "grad_accum", "grad_clip", "max_steps",
              "checkpoint_every")
CONVERGENCE = "train.convergence"  # the one convergence rule every training stage reads
STUDENT_KEYS = ("select", "selector", "gate", "selector_input", "distill_weight", "relevance_weight",
                "released_teacher_qformer", "tau", "noisy_eval", "prompter_lr")
# What a fine-tuning of the backbone into a frame reader reads (the teachers, SeViLA's Answerers, the selection
# study's readers: vila.training.fit.fit_reader)
READER_PARAMS = ("seed", "cpu_isa", "threads.train", "data.frames", "data.augment", "model.lora",
                 "evaluate.batch_size", CONVERGENCE, *(f"train.teacher.{k}" for k in OPTIM_KEYS))


# Placeholders params fill, one value per run (beside the wildcards, one value per job): DVC writes them as
# ${key}, Snakemake and `expand` as the value. reweight reads the teachers of train.student.select and data.frames.
PARAM_PLACEHOLDERS = {"dataset": "dataset", "student_frames": "train.student.select", "data_frames": "data.frames"}


def fill_params(template: str, params: dict[str, Any]) -> str:
    """A stage-list path or command with params' values for PARAM_PLACEHOLDERS; wildcards stay."""
    for name, key in PARAM_PLACEHOLDERS.items():
        template = template.replace(f"{{{name}}}", str(lookup(params, key)))
    return template


# Every path of the list is vila/paths.py's layout with the placeholders kept: the stage list writes none itself.
P = Paths("{dataset}")


def teacher_priority(wildcards: dict[str, str], params: dict[str, Any]) -> int:
    """The teachers re_weight reads are on ViLA's longest chain; the others by frame count."""
    frames = int(wildcards["frames"])
    return 32 if teacher_name(frames) in reweight_teachers(params) else frames


@dataclass(frozen=True)
class Stage:
    """One node of the DAG. `entry` is the function its command runs; `deps` are its data dependencies; its code
    dependencies are computed (vila/pipeline/closure.py)."""

    name: str
    cmd: str
    entry: str  # "module:function", called as function(params, **the command's arguments)
    deps: tuple[str, ...]
    params: tuple[str, ...]
    outs: tuple[str, ...]
    results: tuple[str, ...] = ()  # small JSON outputs DVC keeps out of its cache (git may track them)
    metrics: tuple[str, ...] = ()  # the same, read by DVC as metrics (dvc metrics show / diff, dvc exp show)
    foreach: str | tuple[str, ...] | None = None  # "frames" | "variant" | "keyframes" | ...; several: every combination
    notebooks: tuple[str, ...] = ()
    help: str = ""  # one line: the CLI's help for its command, dvc.yaml's `desc` (a twin: its stage's)
    threads: int | str = 1  # a count, a kind of threads.* in params.yaml, or "all" (every core of a local run)
    uses_torch: bool = True  # computes with torch: the run-time setup pins its CPU kernels and seeds it
    resources: tuple[tuple[str, int], ...] = ()  # Snakemake resources, sized for the full-size run on a cluster
    seeded: bool = False  # its outputs depend on the training seed: the seed study has a twin of it
    base: str = ""  # a seed-study twin: the stage it repeats at {seed}
    # Snakemake starts ready jobs by priority, highest first: about the seconds of work still ahead of a job on the
    # longest chain through it, so the long chains start early and the short jobs fill the cores around them;
    # or a function of the job's wildcards and the params
    priority: int | Callable[[dict[str, str], dict[str, Any]], int] = 0

    def __post_init__(self) -> None:  # paths come from vila/paths.py as Path objects; the front-ends read strings
        for name in ("deps", "outs", "results", "metrics", "notebooks"):
            object.__setattr__(self, name, tuple(map(str, getattr(self, name))))

    @property
    def entry_module(self) -> str:
        return self.entry.partition(":")[0]

    @property
    def wildcards(self) -> tuple[str, ...]:
        """The placeholders that make one job of this stage: {frames}/{variant}/{keyframes}, and {seed}."""
        each = (self.foreach,) if isinstance(self.foreach, str) else tuple(self.foreach or ())
        return (*each, *(["seed"] if self.base else []))

    @property
    def matrix(self) -> bool:
        """DVC's `matrix` (every combination; a seed-study twin's too), not a `foreach` over one list."""
        return len(self.wildcards) > 1 or bool(self.base)


STAGES: tuple[Stage, ...] = (
    Stage("download", "vila download",
          entry="vila.data.download:run", uses_torch=False,
          help="generate synthqa, or verify and convert a real dataset under data/",
          deps=(P.raw_root,),
          # a real dataset: the val carve-out, the moment set on data.frames' grid, the tokenizer's coverage
          params=("dataset", "data.raw_dir", "data.decoder", "data.synthqa", "data.validation", "data.frames",
                  "model.weights"),
          outs=(P.dataset_dir,), threads=2,  # download.CLIP_WORKERS encode and check clips
          resources=(("mem_mb", 8000), ("runtime", 240))),
    Stage("preprocess", "vila preprocess",
          entry="vila.data.preprocess:run", uses_torch=False,
          help="decode every clip once into the frame cache",
          deps=(P.dataset_dir,),
          params=("data.frames", "data.on_bad_video", "data.decoder", "model.preset"),
          outs=(P.frames_dir,),
          resources=(("mem_mb", 8000), ("runtime", 240))),
    Stage("backbone", "vila backbone",
          entry="vila.training.backbone:run",
          help="pretrain (embedded) or load (real) the backbone; cache frozen-ViT features",
          deps=(P.frames_dir,),
          params=("seed", "cpu_isa", "threads.backbone", "model.preset", "model.weights", "backbone"),
          outs=(P.model("backbone"), P.features_dir),
          threads="backbone", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 240))),
    Stage("teacher", "vila train teacher --frames {frames}",
          help="fine-tune the backbone on N uniformly sampled frames (the teachers: 2-32 frames)",
          entry="vila.training.fit:run_teacher",
          priority=teacher_priority,
          deps=(P.model("backbone"), P.features_dir, P.frames_dir),
          params=READER_PARAMS,
          outs=(P.model(teacher_name("{frames}")),), foreach="frames",
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("reweight", "vila reweight",
          entry="vila.training.students:run_reweight",
          priority=25,
          help="student init = the train.student.select-frame teacher + the data.frames-frame teacher's branch; its targets",
          deps=(P.model(teacher_name("{student_frames}")), P.model(teacher_name("{data_frames}")), P.model("backbone"),
                P.features_dir, P.frames_dir),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "evaluate.batch_size", "train.student.select",
                  "train.student.selector", "train.student.gate", "train.student.selector_input"),
          outs=(P.model(STUDENT_INIT),),
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("student", "vila train student --variant {variant}",
          help="train a ViLA student: Frame-Prompter + QFormer-Distiller from re_weight's init",
          entry="vila.training.students:run_student",
          priority=20,
          deps=(P.model(STUDENT_INIT), P.features_dir, P.frames_dir),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "data.augment", "evaluate.batch_size",
                  CONVERGENCE, "variants.{variant}", *(f"train.student.{k}" for k in (*OPTIM_KEYS, *STUDENT_KEYS))),
          outs=(P.model("{variant}"),), foreach="variant",
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("evaluate_teacher", f"vila evaluate --variant {teacher_name('{frames}')}",
          help="accuracy per type, key-frame recall and predictions of a uniform teacher on the test split",
          entry="vila.evaluation.evaluate:run",
          deps=(P.model(teacher_name("{frames}")), P.features_dir, P.dataset_dir),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample"),
          outs=(), results=(P.eval_json(teacher_name("{frames}")),), foreach="frames",
          threads="evaluate", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("evaluate_student", "vila evaluate --variant {variant}",
          help="accuracy per type, key-frame recall, the frames chosen and predictions of a ViLA student",
          entry="vila.evaluation.evaluate:run",
          deps=(P.model("{variant}"), P.features_dir, P.frames_dir,
                P.dataset_dir),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample"),
          outs=(), results=(P.eval_json("{variant}"),), foreach="variant",
          threads="evaluate", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("localizer_pretrain", "vila train localizer-pretrain",
          help="SeViLA's step 1: its Localizer learns moment retrieval (synthqa's moment-retrieval set)",
          entry="vila.training.sevila:run_localizer_pretrain",
          priority=60,
          deps=(P.model("backbone"), P.features_dir, P.frames_dir,
                P.dataset_dir),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "evaluate.batch_size", CONVERGENCE,
                  "sevila.localizer", "sevila.pretrain_val_clips"),
          outs=(P.model(SEVILA_PRETRAINED),),
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("pseudolabel", "vila pseudolabel --labeller zero_shot",
          entry="vila.training.sevila:run_pseudolabel",
          priority=60,
          help="SeViLA's self-refinement labels: each frame of each training question read alone by a labeller",
          deps=(P.model("backbone"), P.features_dir, P.frames_dir),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "evaluate.batch_size"),
          outs=(P.pseudo_labels("zero_shot"),),
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 240))),
    Stage("localizer", "vila train localizer --recipe sevila_localizer",
          help="SeViLA's self-refinement: the pre-trained Localizer learns the zero-shot Answerer's pseudo-labels",
          entry="vila.training.sevila:run_localizer",
          priority=45,
          deps=(P.model(SEVILA_PRETRAINED), P.pseudo_labels("zero_shot"),
                P.model("backbone"), P.features_dir, P.frames_dir),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "evaluate.batch_size", CONVERGENCE,
                  "sevila.localizer"),
          outs=(P.model("sevila_localizer"),),
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("localize", "vila localize",
          entry="vila.training.sevila:run_localize",
          priority=30,
          help="SeViLA's trained Localizer scores every frame of every train and val question (its Answerers' frames)",
          deps=(P.model("sevila_localizer"), P.features_dir, P.frames_dir,
                P.dataset_dir),
          params=("cpu_isa", "threads.train", "evaluate.batch_size", "evaluate.split"),
          outs=(P.localized,),
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 240))),
    Stage("answerer", "vila train answerer --frames {keyframes}",
          help="SeViLA's Answerer fine-tuned on the Localizer's top-k frames of every training question",
          entry="vila.training.sevila:run_answerer",
          priority=25,
          deps=(P.model("backbone"), P.localized, P.features_dir,
                P.frames_dir),
          params=READER_PARAMS,
          outs=(P.model(sevila_answerer("{keyframes}")),), foreach="keyframes",
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("sevila", "vila sevila --frames {keyframes}",
          help="sevila_<k>f: the k-frame Answerer with the refined Localizer",
          entry="vila.training.sevila:run_sevila",
          priority=15,
          deps=(P.model(sevila_answerer("{keyframes}")), P.model("sevila_localizer")),
          params=("data.frames",),
          outs=(P.model(sevila_name("{keyframes}")),), foreach="keyframes",
          threads="train", seeded=True, resources=(("mem_mb", 16000), ("runtime", 30))),
    Stage("evaluate_sevila", f"vila evaluate --variant {sevila_name('{keyframes}')}",
          help="accuracy per type, key-frame recall, the Localizer's choices and predictions of sevila_<k>f",
          entry="vila.evaluation.evaluate:run",
          priority=10,
          deps=(P.model(sevila_name("{keyframes}")), P.localized, P.features_dir,
                P.dataset_dir),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample"),
          outs=(), results=(P.eval_json(sevila_name("{keyframes}")),), foreach="keyframes",
          threads="evaluate", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    # SeViLA's ablations (registry.SEVILA_ABLATIONS): each drops one piece of its recipe (seed 0 only)
    Stage("uniform_answerer", "vila train uniform-answerer",
          help="an ablation's parts: SeViLA's 4-frame Answerer fine-tuned on uniform frames",
          entry="vila.training.sevila:run_uniform_answerer",
          priority=40,
          deps=(P.model("backbone"), P.features_dir, P.frames_dir),
          params=READER_PARAMS,
          outs=(P.model(sevila_answerer(SEVILA_K, uniform=True)),),
          threads="train", resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("pseudolabel_finetuned", "vila pseudolabel --labeller uniform_answerer",
          help="an ablation's labels: each frame read alone by the uniform-trained Answerer",
          entry="vila.training.sevila:run_pseudolabel",
          priority=35,
          deps=(P.model(sevila_answerer(SEVILA_K, uniform=True)), P.features_dir, P.frames_dir),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "evaluate.batch_size"),
          outs=(P.pseudo_labels("uniform_answerer"),),
          threads="train", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 240))),
    Stage("localizer_no_pretrain", "vila train localizer --recipe sevila_localizer_no_pretrain",
          help="an ablation: the Localizer refined from the backbone's Q-Former, no moment retrieval",
          entry="vila.training.sevila:run_localizer",
          priority=30,
          deps=(P.pseudo_labels("zero_shot"), P.model("backbone"), P.features_dir,
                P.frames_dir),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "evaluate.batch_size", CONVERGENCE,
                  "sevila.localizer"),
          outs=(P.model("sevila_localizer_no_pretrain"),),
          threads="train", resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("localizer_finetuned_labeller", "vila train localizer --recipe sevila_localizer_finetuned_labeller",
          help="an ablation: the pre-trained Localizer refined on the uniform-trained Answerer's labels",
          entry="vila.training.sevila:run_localizer",
          priority=30,
          deps=(P.model(SEVILA_PRETRAINED), P.pseudo_labels("uniform_answerer"),
                P.model(sevila_answerer(SEVILA_K, uniform=True)), P.model("backbone"),
                P.features_dir, P.frames_dir),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "evaluate.batch_size", CONVERGENCE,
                  "sevila.localizer"),
          outs=(P.model("sevila_localizer_finetuned_labeller"),),
          threads="train", resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("sevila_ablation", "vila sevila --ablation {ablation}",
          help="SeViLA without one piece of its recipe (registry.SEVILA_ABLATIONS)",
          entry="vila.training.sevila:run_sevila_ablation",
          priority=10,
          deps=(P.model(sevila_answerer(SEVILA_K)), P.model(sevila_answerer(SEVILA_K, uniform=True)),
                P.model("sevila_localizer"), P.model("sevila_localizer_no_pretrain"),
                P.model("sevila_localizer_finetuned_labeller")),
          params=("data.frames",), foreach="ablation",
          outs=(P.model("{ablation}"),),
          threads="train", resources=(("mem_mb", 16000), ("runtime", 30))),
    Stage("evaluate_sevila_ablation", "vila evaluate --variant {ablation}",
          help="accuracy per type and predictions of a SeViLA ablation",
          entry="vila.evaluation.evaluate:run",
          priority=5,
          deps=(P.model("{ablation}"), P.localized, P.features_dir,
                P.dataset_dir),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample"),
          outs=(), results=(P.eval_json("{ablation}"),), foreach="ablation",
          threads="evaluate", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("speed", "vila speed",
          entry="vila.speed.latency:run",
          priority=5,
          help="latency, breakdown, FLOPs and memory of every variant, in one process",
          deps=(P.models_dir, P.frames_dir),
          params=("seed", "cpu_isa", "speed", "data.frames"),
          outs=(), results=(P.speed_json,),
          threads="all", resources=(("mem_mb", 16000), ("runtime", 60))),
    Stage("compare", "vila compare",
          entry="vila.evaluation.compare:run", uses_torch=False,
          help="every comparison with a paired bootstrap interval and McNemar's test; a verdict per claim",
          deps=(P.eval_dir, P.speed_json, P.dataset_dir,
                PAPER_FIGURES),
          params=("evaluate.split", "compare"),
          outs=(), results=(P.comparisons_json,),
          seeded=True, resources=(("mem_mb", 4000), ("runtime", 10))),
    Stage("summary", "vila summary",
          entry="vila.evaluation.summary:run", uses_torch=False,
          help="the figures DVC reads as metrics: accuracy and key-frame recall per variant, speed-ups",
          deps=(P.eval_dir, P.speed_json),
          params=(),
          outs=(), metrics=(P.metrics_dir,),
          resources=(("mem_mb", 1000), ("runtime", 5))),
    Stage("report", "vila report",
          entry="vila.reports.render:run_reports", uses_torch=False,
          help="execute the notebooks with papermill and render reports/*.html",
          deps=(PAPER_FIGURES, P.eval_dir, P.speed_json,
                P.comparisons_json, P.metrics_dir, P.models_dir,
                P.dataset_dir, P.frames_dir),
          params=("dataset", "report.selection_examples", "train.convergence", "compare", "data.synthqa",
                  "evaluate.split", "train.teacher.frames"),
          outs=tuple(map(report, REPORT_PAGES)), notebooks=tuple(map(notebook, REPORT_PAGES))),
)
# A study seed's outputs, as vila/paths.py lays them out (study_root), with {seed} for the wildcard.
STUDY_ROOT = f"{study_root('{seed}')}/"


def _seeded_outputs(stages: tuple[Stage, ...]) -> set[str]:
    return {o for st in stages if st.seeded for o in (*st.outs, *st.results, *st.metrics)}


def _shared_outputs(stages: tuple[Stage, ...]) -> set[str]:
    return {o for st in stages if not st.seeded for o in (*st.outs, *st.results, *st.metrics)}


def study_path(path: str, seeded: set[str]) -> str:
    """A seeded stage's output (or a folder holding some) at {seed}; anything else is shared by every seed. An
    output template matches any value of its placeholders (reweight reads models/{dataset}/uniform_{student_frames}f,
    which the teacher stage writes as models/{dataset}/uniform_{frames}f)."""
    def pattern(template: str) -> str:
        parts = re.split(r"(\{\w+\})", template)
        return "".join(r"[^/]+" if re.fullmatch(r"\{\w+\}", x) and x != "{dataset}" else re.escape(x) for x in parts)

    if path in _shared_outputs(STAGES):  # models/{dataset}/backbone is no {variant}
        return path
    folder = re.escape(path.rstrip("/")) + "/"
    inside = any(re.fullmatch(pattern(o), path) or re.match(folder, o) for o in seeded)
    return STUDY_ROOT + path if inside else path


def study_twin(stage: Stage, seeded: set[str]) -> Stage:
    """The seed study's copy of a seeded stage: the same command and entry point at `--seed {seed}`
    (vila.config.at_seed)."""
    return dataclasses.replace(
        stage, name=f"{stage.name}_seeds", base=stage.name, help="",
        cmd=stage.cmd.replace("vila ", "vila --seed {seed} ", 1),
        deps=tuple(study_path(d, seeded) for d in stage.deps),
        outs=tuple(STUDY_ROOT + o for o in stage.outs), results=tuple(STUDY_ROOT + r for r in stage.results),
        metrics=tuple(STUDY_ROOT + m for m in stage.metrics))


STUDY_STAGES: tuple[Stage, ...] = (
    *(study_twin(st, _seeded_outputs(STAGES)) for st in STAGES if st.seeded),
    Stage("seeds", "vila seeds",
          entry="vila.reports.render:run_seeds", uses_torch=False,
          help="the seed study: every seed's figures, mean and sd across seeds, each claim's verdict at every seed",
          deps=(P.eval_dir, P.comparisons_json, STUDY_SEEDS,
                P.dataset_dir),
          params=("seed", "seeds_study", "evaluate.split", "compare"),
          outs=(report("seeds"),), results=(P.study_comparisons_json,),
          notebooks=(notebook("seeds"),), resources=(("mem_mb", 4000), ("runtime", 10))),
)
# The selection study (vila/selection/study.py): one answerer, every selector. Snakemake: `reproduce_selection`;
# DVC: selection/dvc.yaml, apart from dvc.yaml for the same reason as the seed study's.
SELECTION_STAGES: tuple[Stage, ...] = (
    Stage("reader", "vila train reader --frames {budget}",
          help="the selection study's shared reader for budget k, trained on question-blind frame sets",
          entry="vila.selection.study:run_reader",
          deps=(P.model("backbone"), P.features_dir, P.frames_dir),
          params=(*READER_PARAMS, "selection.random_seed"),
          outs=(P.reader("{budget}"),), foreach="budget",
          threads="train", resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("scores", "vila scores --source {scorer}",
          help="per-frame scores of every val and test question from one source (selection.scorers)",
          entry="vila.selection.study:run_scores",
          deps=(P.model("{scorer}"), P.features_dir, P.frames_dir, P.dataset_dir),
          params=("cpu_isa", "threads.evaluate", "evaluate.batch_size"),
          outs=(P.scores("{scorer}"),), results=(P.scores_meta("{scorer}"),),
          foreach="scorer", threads="evaluate", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("select", "vila select --selector {selector} --frames {budget}",
          help="one selector's k frames per test question, read by the shared reader_<k>f",
          entry="vila.selection.study:run_select",
          deps=(P.reader("{budget}"), P.scores_dir, P.scores_meta_dir,
                P.features_dir, P.frames_dir, P.dataset_dir),
          params=("seed", "cpu_isa", "threads.evaluate", "data.frames", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample", "selection"),
          outs=(), results=(P.selection_json("{selector}", "{budget}"),), foreach=("selector", "budget"),
          threads="evaluate", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 60))),
    Stage("selection", "vila selection",
          entry="vila.reports.render:run_selection", uses_torch=False,
          help="the selection study's report: every selector read by one answerer, its recall and its cost",
          deps=(P.selection_dir, P.scores_meta_dir, P.speed_json,
                P.eval_dir, P.readers_dir, P.dataset_dir,
                P.frames_dir),
          params=("dataset", "data.frames", "selection", "compare", "train.convergence"),
          outs=(report("selection"),), notebooks=(notebook("selection"),),
          resources=(("mem_mb", 4000), ("runtime", 10))),
)
ALL_STAGES = STAGES + STUDY_STAGES + SELECTION_STAGES


def stage_by_name(name: str) -> Stage:
    return next(s for s in ALL_STAGES if s.name == name)


def plain_commands() -> dict[str, Stage]:
    """Stages that are a plain `vila <name>` command (the CLI's subcommands of that name)."""
    return {s.name: s for s in ALL_STAGES if s.cmd == f"vila {s.name}"}


def study_models(params: dict[str, Any]) -> set[str]:
    """The models the seed study trains again at every seed: those the claims of compare.STUDY_GROUPS compare (the
    paper's, the equal-budget ones, the extension), and the teachers the students start from."""
    from vila.evaluation.compare import CLAIMS, STUDY_GROUPS

    models = {m for c in CLAIMS if c["group"] in STUDY_GROUPS for m in (c["a"], c["b"])}
    return models | set(reweight_teachers(params))


def job_values(params: dict[str, Any], stage: Stage) -> list[dict[str, Any]]:
    """One dict of wildcard values per job of a stage (a seed-study twin: the study's models only)."""
    choices = {"frames": params["train"]["teacher"]["frames"], "variant": list(params["variants"]),
               "keyframes": params["sevila"]["frames"], "seed": params["seeds_study"], "ablation": list(SEVILA_ABLATIONS),
               "scorer": params["selection"]["scorers"], "selector": params["selection"]["selectors"],
               "budget": params["selection"]["frames"]}
    if stage.base:
        models = study_models(params)
        choices.update(frames=[n for n in choices["frames"] if teacher_name(n) in models],
                       variant=[v for v in choices["variant"] if v in models],
                       keyframes=[k for k in choices["keyframes"] if sevila_name(k) in models])
    values: list[dict[str, Any]] = [{}]
    for w in stage.wildcards:
        values = [{**v, w: c} for v in values for c in choices[w]]
    return values


def expand(params: dict[str, Any], stages: tuple[Stage, ...] = STAGES) -> list[dict[str, Any]]:
    """Every job of the DAG with concrete paths (what both front-ends must agree on)."""
    from vila.pipeline.closure import stage_deps

    jobs = []
    for st in stages:
        for v in job_values(params, st):
            def fmt(text: str, v: dict[str, Any] = v) -> str:
                return fill_params(text, params).format(**v)

            jobs.append({
                "stage": st.name,
                "cmd": fmt(st.cmd),
                "deps": sorted(fmt(d) for d in stage_deps(st)),
                "params": sorted(fmt(p) for p in st.params),
                "outs": sorted(fmt(o) for o in (*st.outs, *st.results, *st.metrics)),
            })
    return jobs
