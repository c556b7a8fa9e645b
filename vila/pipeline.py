"""The stage list: the one description of the DAG. Everything else is derived from it: the Snakemake rules
(workflow/rules/stages.smk, through the helpers in common.smk), dvc.yaml (`vila pipeline` writes it; CI checks
it is current), the CLI's stage commands, and each stage's code dependencies (the import closure of its module
vila/stages/<name>.py). tests/test_pipeline.py checks, through each tool's own reading, that Snakemake's and
DVC's views of the DAG agree: same commands, dependencies, params and outputs per job.

Placeholders: {dataset} (params.yaml), {frames} (each of train.teacher.frames), {variant} (each key
of `variants`), {keyframes} (each k of sevila.frames). Params are listed as finely as each stage reads them, so DVC reruns only what a
changed key can affect.
"""

from __future__ import annotations

import ast
import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

OPTIM_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "warmup_steps", "grad_accum", "grad_clip", "patience",
              "max_steps", "checkpoint_every")
STUDENT_KEYS = ("select", "selector", "gate", "selector_input", "distill_weight", "relevance_weight",
                "released_teacher_qformer", "tau", "noisy_eval", "prompter_lr")
ROOT = Path(__file__).resolve().parents[1]
# What a uniform-frame fine-tuning reads (the teachers and SeViLA's Answerers: train_models.fit_uniform)
UNIFORM_FINETUNE_PARAMS = ("seed", "cpu_isa", "threads.train", "data.frames", "data.augment", "model.lora",
                           "evaluate.batch_size", *(f"train.teacher.{k}" for k in OPTIM_KEYS))


@dataclass(frozen=True)
class Stage:
    """One node of the DAG, run by vila/stages/<name>.py. `deps` are its data dependencies; its code dependencies
    are computed: the import closure inside vila/ of its module and of the CLI, plus, for a stage that renders
    notebooks, the notebooks and what their cells import."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    params: tuple[str, ...]
    outs: tuple[str, ...]
    results: tuple[str, ...] = ()  # small JSON outputs DVC keeps out of its cache (git may track them)
    metrics: tuple[str, ...] = ()  # the same, read by DVC as metrics (dvc metrics show / diff, dvc exp show)
    foreach: str | None = None  # "frames" | "variant" | "keyframes"
    notebooks: tuple[str, ...] = ()
    help: str = ""  # the CLI's one-line description of a stage that is a plain `vila <name>` command
    threads: int | str = 1  # a count, a kind of threads.* in params.yaml, or "all" (every core of a local run)
    resources: tuple[tuple[str, int], ...] = ()  # Snakemake resources, sized for the full-size run on a cluster

    @property
    def module(self) -> str:
        """The stage's own module, vila/stages/<name>.py, whose main(params, **wildcards) the command runs."""
        return f"vila.stages.{self.name}"


STAGES: tuple[Stage, ...] = (
    Stage("download", "vila download",
          help="generate synthqa, or verify and convert a real dataset under data/",
          deps=("data",),
          params=("dataset", "data.raw_dir", "data.decoder", "data.synthqa"),
          outs=("work/{dataset}/dataset",),
          resources=(("mem_mb", 8000), ("runtime", 240))),
    Stage("preprocess", "vila preprocess",
          help="decode every clip once into the frame cache",
          deps=("work/{dataset}/dataset",),
          params=("data.frames", "data.on_bad_video", "data.decoder", "model.preset"),
          outs=("work/{dataset}/frames",),
          resources=(("mem_mb", 8000), ("runtime", 240))),
    Stage("backbone", "vila backbone",
          help="pretrain (embedded) or load (real) the backbone; cache frozen-ViT features",
          deps=("work/{dataset}/frames",),
          params=("seed", "cpu_isa", "threads.backbone", "model.preset", "model.weights", "backbone"),
          outs=("models/{dataset}/backbone", "work/{dataset}/features"),
          threads="backbone", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 240))),
    Stage("teacher", "vila train teacher --frames {frames}",
          deps=("models/{dataset}/backbone", "work/{dataset}/features", "work/{dataset}/frames"),
          params=UNIFORM_FINETUNE_PARAMS,
          outs=("models/{dataset}/uniform_{frames}f",), foreach="frames",
          threads="train", resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("reweight", "vila reweight",
          help="student init = 4-frame model + 32-frame teacher branch, and the branch's targets per question",
          deps=("models/{dataset}/uniform_4f", "models/{dataset}/uniform_32f", "models/{dataset}/backbone",
                "work/{dataset}/features", "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "evaluate.batch_size", "train.student.select",
                  "train.student.selector", "train.student.gate", "train.student.selector_input"),
          outs=("models/{dataset}/vila_init",),
          threads="train", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("student", "vila train student --variant {variant}",
          deps=("models/{dataset}/vila_init", "work/{dataset}/features", "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "data.augment", "evaluate.batch_size",
                  "variants.{variant}", *(f"train.student.{k}" for k in (*OPTIM_KEYS, *STUDENT_KEYS))),
          outs=("models/{dataset}/{variant}",), foreach="variant",
          threads="train", resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("evaluate_teacher", "vila evaluate --variant uniform_{frames}f",
          deps=("models/{dataset}/uniform_{frames}f", "work/{dataset}/features", "work/{dataset}/dataset"),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample"),
          outs=(), results=("results/{dataset}/eval/uniform_{frames}f.json",), foreach="frames",
          threads="evaluate", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("evaluate_student", "vila evaluate --variant {variant}",
          deps=("models/{dataset}/{variant}", "work/{dataset}/features", "work/{dataset}/frames",
                "work/{dataset}/dataset"),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample"),
          outs=(), results=("results/{dataset}/eval/{variant}.json",), foreach="variant",
          threads="evaluate", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("answerer", "vila train answerer --frames {keyframes}",
          deps=("models/{dataset}/backbone", "work/{dataset}/features", "work/{dataset}/frames"),
          params=UNIFORM_FINETUNE_PARAMS,
          outs=("models/{dataset}/sevila_answerer_{keyframes}f",), foreach="keyframes",
          threads="train", resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("pseudolabel", "vila pseudolabel",
          help="SeViLA's self-refinement labels: each frame of each training question read alone by the Answerer",
          deps=("models/{dataset}/sevila_answerer_4f", "models/{dataset}/backbone", "work/{dataset}/features",
                "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "threads.train", "evaluate.batch_size"),
          outs=("work/{dataset}/pseudo_labels",),
          threads="train", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 240))),
    Stage("localizer", "vila train localizer",
          deps=("models/{dataset}/sevila_answerer_4f", "models/{dataset}/backbone", "work/{dataset}/pseudo_labels",
                "work/{dataset}/features", "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "evaluate.batch_size", "sevila.localizer"),
          outs=("models/{dataset}/sevila_localizer",),
          threads="train", resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("sevila", "vila sevila --frames {keyframes}",
          deps=("models/{dataset}/sevila_answerer_{keyframes}f", "models/{dataset}/sevila_localizer"),
          params=("data.frames",),
          outs=("models/{dataset}/sevila_{keyframes}f",), foreach="keyframes",
          threads="train", resources=(("mem_mb", 16000), ("runtime", 30))),
    Stage("evaluate_sevila", "vila evaluate --variant sevila_{keyframes}f",
          deps=("models/{dataset}/sevila_{keyframes}f", "work/{dataset}/features", "work/{dataset}/dataset"),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample"),
          outs=(), results=("results/{dataset}/eval/sevila_{keyframes}f.json",), foreach="keyframes",
          threads="evaluate", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("speed", "vila speed",
          help="latency, breakdown, FLOPs and memory of every variant, in one process",
          deps=("models/{dataset}", "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "speed", "data.frames"),
          outs=(), results=("results/{dataset}/speed.json",),
          threads="all", resources=(("mem_mb", 16000), ("runtime", 60))),
    Stage("compare", "vila compare",
          help="every comparison with a paired bootstrap interval and McNemar's test; a verdict per claim",
          deps=("results/{dataset}/eval", "results/{dataset}/speed.json", "work/{dataset}/dataset",
                "paper-figures.yaml"),
          params=("evaluate.split", "compare"),
          outs=(), results=("results/{dataset}/comparisons.json",),
          resources=(("mem_mb", 4000), ("runtime", 10))),
    Stage("summary", "vila summary",
          help="the figures DVC reads as metrics: accuracy and key-frame recall per variant, speed-ups",
          deps=("results/{dataset}/eval", "results/{dataset}/speed.json"),
          params=(),
          outs=(), metrics=("results/{dataset}/metrics.json",),
          resources=(("mem_mb", 1000), ("runtime", 5))),
    Stage("report", "vila report",
          help="execute the notebooks with papermill and render reports/*.html",
          deps=("paper-figures.yaml", "results/{dataset}", "models/{dataset}", "work/{dataset}/dataset",
                "work/{dataset}/frames"),
          params=("dataset", "report.selection_examples"),
          outs=("reports/table1.html", "reports/table2.html", "reports/speed.html", "reports/training.html"),
          notebooks=("notebooks/table1.ipynb", "notebooks/table2.ipynb", "notebooks/speed.ipynb",
                     "notebooks/training.ipynb")),
)
# What every stage's command runs besides its module: the params loader and the CPU pins (through vila/cli.py,
# whose other imports are each command's own, made inside that command).
CLI_MODULES = ("vila.config", "vila.cpu")
CLI_FILE = "vila/cli.py"


def module_path(module: str, root: Path = ROOT) -> Path | None:
    """vila.data.video -> vila/data/video.py (a package: its __init__.py); None outside this project."""
    if module != "vila" and not module.startswith("vila."):
        return None
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def imported_modules(source: str, module: str, is_package: bool = False, name: str = "<source>") -> set[str]:
    """Every module a piece of code imports, at the top or inside a function (a lazy import is a dependency
    too); `module` is the code's own module name, for relative imports."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..data import y
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from vila.data import video`
    return found


@functools.cache  # keyed by the file's mtime: every rule of the Snakefile asks for the same files
def _file_imports(path: str, mtime_ns: int, module: str) -> frozenset[str]:
    return frozenset(imported_modules(Path(path).read_text(), module, path.endswith("__init__.py"), path))


def import_closure(*modules: str, root: Path = ROOT) -> list[str]:
    """Repo-relative paths of the files of `modules` and of everything inside vila/ they import, transitively
    (parent packages included: importing vila.data.video runs vila/__init__.py and vila/data/__init__.py)."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in seen or (path := module_path(name, root)) is None:
                continue
            seen[name] = path
            todo.extend(_file_imports(str(path), path.stat().st_mtime_ns, name))
    return sorted(str(p.relative_to(root)) for p in seen.values())


def notebook_imports(path: Path) -> set[str]:
    """Modules the code cells of a notebook import."""
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return imported_modules(code, "__notebook__", name=str(path))


def stage_code(stage: Stage, root: Path = ROOT) -> list[str]:
    """The code a stage depends on: files inside vila/ (the import closure) and the notebooks it renders."""
    modules = [stage.module, *CLI_MODULES]
    for nb in stage.notebooks:
        modules += sorted(notebook_imports(root / nb))
    return sorted({*import_closure(*modules, root=root), CLI_FILE, *stage.notebooks})


def stage_deps(stage: Stage) -> list[str]:
    return [*stage_code(stage), *stage.deps]


def stage_by_name(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)


def plain_commands() -> dict[str, Stage]:
    """Stages that are a plain `vila <name>` command (the CLI's subcommands of that name)."""
    return {s.name: s for s in STAGES if s.cmd == f"vila {s.name}"}


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
    if foreach == "keyframes":
        return text.replace("{keyframes}", "${item}")
    return text


def render_dvc(stages: tuple[Stage, ...] = STAGES) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for st in stages:
        body: dict[str, Any] = {"cmd": _dvc(st.cmd, st.foreach), "deps": [_dvc(d, st.foreach) for d in stage_deps(st)],
                                "params": [_dvc(p, st.foreach) for p in st.params]}
        if not body["params"]:
            del body["params"]
        if st.outs:
            body["outs"] = [_dvc(o, st.foreach) for o in st.outs]
        if st.results:
            body.setdefault("outs", []).extend({_dvc(r, st.foreach): {"cache": False}} for r in st.results)
        if st.metrics:
            body["metrics"] = [{_dvc(m, st.foreach): {"cache": False}} for m in st.metrics]
        if st.foreach == "frames":
            out[st.name] = {"foreach": "${train.teacher.frames}", "do": body}
        elif st.foreach == "variant":
            out[st.name] = {"foreach": "${variants}", "do": body}
        elif st.foreach == "keyframes":
            out[st.name] = {"foreach": "${sevila.frames}", "do": body}
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
        elif st.foreach == "keyframes":
            values = [{"keyframes": k} for k in params["sevila"]["frames"]]
        for v in values:
            fmt = {"dataset": params["dataset"], **v}
            jobs.append({
                "stage": st.name,
                "cmd": st.cmd.format(**fmt),
                "deps": sorted(d.format(**fmt) for d in stage_deps(st)),
                "params": sorted(p.format(**fmt) for p in st.params),
                "outs": sorted(o.format(**fmt) for o in (*st.outs, *st.results, *st.metrics)),
            })
    return jobs
