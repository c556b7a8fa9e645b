"""The stage list: the one description of the DAG that dvc.yaml is generated from.

`vila pipeline` writes dvc.yaml from it; the Snakemake rules in workflow/rules/*.smk declare the same
stages by hand (they read better as Snakemake), and tests/test_pipeline.py proves that Snakemake's
and DVC's views of the DAG agree: same commands, dependencies, params and outputs per job.

Placeholders: {dataset} (params.yaml), {frames} (each of train.teacher.frames), {variant} (each key
of `variants`). Params are listed as finely as each stage reads them, so DVC reruns only what a
changed key can affect.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

OPTIM_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "warmup_steps", "grad_accum", "grad_clip", "patience",
              "max_steps", "checkpoint_every")
STUDENT_KEYS = ("select", "selector", "gate", "selector_input", "distill_weight", "relevance_weight",
                "released_teacher_qformer", "tau", "noisy_eval", "prompter_lr")
SRC = "vila/"


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str
    deps: tuple[str, ...]
    params: tuple[str, ...]
    outs: tuple[str, ...]
    metrics: tuple[str, ...] = ()  # outputs DVC keeps out of its cache and reads as metrics
    foreach: str | None = None  # "frames" | "variant"
    plots: tuple[str, ...] = field(default=())


STAGES: tuple[Stage, ...] = (
    Stage("download", "vila download",
          deps=(f"{SRC}data/download.py", f"{SRC}data/synthqa.py", f"{SRC}data/video.py", f"{SRC}data/convert.py",
                f"{SRC}data/real.py", "data"),
          params=("dataset", "data.raw_dir", "data.decoder", "data.synthqa"),
          outs=("work/{dataset}/dataset",)),
    Stage("preprocess", "vila preprocess",
          deps=(f"{SRC}data/preprocess.py", f"{SRC}data/video.py", f"{SRC}data/dataset.py", f"{SRC}data/prompts.py",
                "work/{dataset}/dataset"),
          params=("data.frames", "data.on_bad_video", "data.decoder", "model.preset"),
          outs=("work/{dataset}/frames",)),
    Stage("backbone", "vila backbone",
          deps=(f"{SRC}backbone.py", f"{SRC}cpu.py", f"{SRC}models/modeling.py", f"{SRC}models/presets.py", f"{SRC}models/tokenizer.py",
                "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "threads.backbone", "model.preset", "model.weights", "backbone"),
          outs=("models/{dataset}/backbone", "work/{dataset}/features")),
    Stage("teacher", "vila train teacher --frames {frames}",
          deps=(f"{SRC}train_models.py", f"{SRC}training.py", f"{SRC}cpu.py", f"{SRC}models/modeling.py", "models/{dataset}/backbone",
                "work/{dataset}/features", "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "data.augment", "model.lora", "evaluate.batch_size",
                  *(f"train.teacher.{k}" for k in OPTIM_KEYS)),
          outs=("models/{dataset}/uniform_{frames}f",), foreach="frames"),
    Stage("reweight", "vila reweight",
          deps=(f"{SRC}train_models.py", "models/{dataset}/uniform_4f", "models/{dataset}/uniform_32f"),
          params=("seed", "data.frames", "train.student.select", "train.student.selector", "train.student.gate",
                  "train.student.selector_input"),
          outs=("models/{dataset}/vila_init",)),
    Stage("student", "vila train student --variant {variant}",
          deps=(f"{SRC}train_models.py", f"{SRC}training.py", f"{SRC}cpu.py", f"{SRC}models/modeling.py", "models/{dataset}/vila_init",
                "work/{dataset}/features", "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "data.augment", "evaluate.batch_size", "variants.{variant}",
                  *(f"train.student.{k}" for k in (*OPTIM_KEYS, *STUDENT_KEYS))),
          outs=("models/{dataset}/{variant}",), foreach="variant"),
    Stage("evaluate_teacher", "vila evaluate --variant uniform_{frames}f",
          deps=(f"{SRC}evaluation.py", f"{SRC}cpu.py", f"{SRC}data/metrics.py", "models/{dataset}/uniform_{frames}f",
                "work/{dataset}/features", "work/{dataset}/dataset"),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size", "evaluate.chosen_sample"),
          outs=(), metrics=("results/{dataset}/eval/uniform_{frames}f.json",), foreach="frames"),
    Stage("evaluate_student", "vila evaluate --variant {variant}",
          deps=(f"{SRC}evaluation.py", f"{SRC}cpu.py", f"{SRC}data/metrics.py", "models/{dataset}/{variant}",
                "work/{dataset}/features", "work/{dataset}/frames", "work/{dataset}/dataset"),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size", "evaluate.chosen_sample"),
          outs=(), metrics=("results/{dataset}/eval/{variant}.json",), foreach="variant"),
    Stage("speed", "vila speed",
          deps=(f"{SRC}speed.py", f"{SRC}cpu.py", f"{SRC}models/flops.py", "models/{dataset}", "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "speed", "data.frames"),
          outs=(), metrics=("results/{dataset}/speed.json",)),
    Stage("report", "vila report",
          deps=(f"{SRC}report.py", "notebooks", "paper-figures.yaml", "results/{dataset}", "models/{dataset}",
                "work/{dataset}/dataset", "work/{dataset}/frames"),
          params=("dataset", "report.selection_examples"),
          outs=("reports/table1.html", "reports/table2.html", "reports/speed.html", "reports/training.html")),
)

PLOTS = [
    {"Training loss": {"template": "linear", "x": "step",
                       "y": {"models/${dataset}/uniform_32f/dvclive/plots/metrics/train/loss.tsv": "loss",
                             "models/${dataset}/vila_4f/dvclive/plots/metrics/train/loss.tsv": "loss"}}},
    {"Validation accuracy": {"template": "linear", "x": "step",
                             "y": {"models/${dataset}/uniform_32f/dvclive/plots/metrics/val/accuracy.tsv": "accuracy",
                                   "models/${dataset}/uniform_4f/dvclive/plots/metrics/val/accuracy.tsv": "accuracy",
                                   "models/${dataset}/vila_4f/dvclive/plots/metrics/val/accuracy.tsv": "accuracy"}}},
]


def _dvc(text: str, foreach: str | None) -> str:
    text = text.replace("{dataset}", "${dataset}")
    if foreach == "frames":
        return text.replace("{frames}", "${item}")
    if foreach == "variant":
        return text.replace("{variant}", "${key}")
    return text


def render_dvc(stages: tuple[Stage, ...] = STAGES) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for st in stages:
        body: dict[str, Any] = {"cmd": _dvc(st.cmd, st.foreach), "deps": [_dvc(d, st.foreach) for d in st.deps],
                                "params": [_dvc(p, st.foreach) for p in st.params]}
        if st.outs:
            body["outs"] = [_dvc(o, st.foreach) for o in st.outs]
        if st.metrics:
            body["metrics"] = [{_dvc(m, st.foreach): {"cache": False}} for m in st.metrics]
        if st.foreach == "frames":
            out[st.name] = {"foreach": "${train.teacher.frames}", "do": body}
        elif st.foreach == "variant":
            out[st.name] = {"foreach": "${variants}", "do": body}
        else:
            out[st.name] = body
    return {"stages": out, "plots": PLOTS}


HEADER = "# Generated by `vila pipeline` from vila/pipeline.py (the stage list). Do not edit by hand.\n"


def dvc_yaml_text() -> str:
    return HEADER + yaml.safe_dump(render_dvc(), sort_keys=False, width=120)


def write_dvc_yaml(params: str = "params.yaml", check: bool = False) -> None:
    path = Path("dvc.yaml")
    text = dvc_yaml_text()
    if check:
        if not path.exists() or path.read_text() != text:
            print("dvc.yaml differs from vila/pipeline.py; run `vila pipeline` to regenerate it", file=sys.stderr)
            raise SystemExit(1)
        return
    path.write_text(text)


def expand(params: dict[str, Any], stages: tuple[Stage, ...] = STAGES) -> list[dict[str, Any]]:
    """Every job of the DAG with concrete paths (what both front-ends must agree on)."""
    jobs = []
    for st in stages:
        values: list[dict[str, Any]] = [{}]
        if st.foreach == "frames":
            values = [{"frames": n} for n in params["train"]["teacher"]["frames"]]
        elif st.foreach == "variant":
            values = [{"variant": v} for v in params["variants"]]
        for v in values:
            fmt = {"dataset": params["dataset"], **v}
            jobs.append({
                "stage": st.name,
                "cmd": st.cmd.format(**fmt),
                "deps": sorted(d.format(**fmt) for d in st.deps),
                "params": sorted(p.format(**fmt) for p in st.params),
                "outs": sorted(o.format(**fmt) for o in (*st.outs, *st.metrics)),
            })
    return jobs
