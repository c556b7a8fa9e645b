"""The stage list: the one description of the DAG. Everything else is derived from it: the Snakemake rules
(workflow/rules/stages.smk, through the helpers in common.smk), dvc.yaml (`vila pipeline` writes it; CI checks
it is current), the CLI's stage commands, and each stage's code dependencies (the import closure of its module
vila/stages/<name>.py). tests/test_pipeline.py checks, through each tool's own reading, that Snakemake's and
DVC's views of the DAG agree: same commands, dependencies, params and outputs per job.

Placeholders: {dataset} (params.yaml), {frames} (each of train.teacher.frames), {variant} (each key
of `variants`), {keyframes} (each k of sevila.frames), {seed} (each of seeds_study), {budget} (each k of
selection.frames), {scorer} and {selector} (selection.scorers, selection.selectors). Params are listed as finely
as each stage reads them, so DVC reruns only what a changed key can affect.

The seed study is derived from the same list: every stage marked `seeded` (what a training seed changes: the
models, their evaluations, the comparisons) has a `<name>_seeds` twin that runs the same command at
`--seed {seed}` with its outputs, and its inputs from seeded stages, under study/seeds/{seed}/; the `seeds`
stage reads every seed's results. Snakemake: `reproduce_seeds`; DVC: study/dvc.yaml (`dvc repro study/dvc.yaml`),
kept apart from dvc.yaml so that a plain `dvc repro` stays the Table 1 DAG.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vila.paths import study_root

OPTIM_KEYS = ("batch_size", "lr", "weight_decay", "warmup_steps", "grad_accum", "grad_clip", "max_steps",
              "checkpoint_every")
CONVERGENCE = "train.convergence"  # the one convergence rule every training stage reads
STUDENT_KEYS = ("select", "selector", "gate", "selector_input", "distill_weight", "relevance_weight",
                "released_teacher_qformer", "tau", "noisy_eval", "prompter_lr")
ROOT = Path(__file__).resolve().parents[1]
# What a fine-tuning of the backbone into a frame reader reads (the teachers, SeViLA's Answerers, the selection
# study's readers: train_models.fit_reader)
READER_PARAMS = ("seed", "cpu_isa", "threads.train", "data.frames", "data.augment", "model.lora",
                 "evaluate.batch_size", CONVERGENCE, *(f"train.teacher.{k}" for k in OPTIM_KEYS))


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
    foreach: str | tuple[str, ...] | None = None  # "frames" | "variant" | "keyframes" | ...; several: every combination
    notebooks: tuple[str, ...] = ()
    help: str = ""  # the CLI's one-line description of a stage that is a plain `vila <name>` command
    threads: int | str = 1  # a count, a kind of threads.* in params.yaml, or "all" (every core of a local run)
    resources: tuple[tuple[str, int], ...] = ()  # Snakemake resources, sized for the full-size run on a cluster
    seeded: bool = False  # its outputs depend on the training seed: the seed study has a twin of it
    base: str = ""  # a seed-study twin: the stage it repeats at {seed} (whose module it runs)

    @property
    def module(self) -> str:
        """The stage's own module, vila/stages/<name>.py, whose main(params, **wildcards) the command runs."""
        return f"vila.stages.{self.base or self.name}"

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
          help="generate synthqa, or verify and convert a real dataset under data/",
          deps=("data",),
          params=("dataset", "data.raw_dir", "data.decoder", "data.synthqa"),
          outs=("work/{dataset}/dataset",), threads=2,  # download.CLIP_WORKERS encode and check clips
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
          params=READER_PARAMS,
          outs=("models/{dataset}/uniform_{frames}f",), foreach="frames",
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("reweight", "vila reweight",
          help="student init = 4-frame model + 32-frame teacher branch, and the branch's targets per question",
          deps=("models/{dataset}/uniform_4f", "models/{dataset}/uniform_32f", "models/{dataset}/backbone",
                "work/{dataset}/features", "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "evaluate.batch_size", "train.student.select",
                  "train.student.selector", "train.student.gate", "train.student.selector_input"),
          outs=("models/{dataset}/vila_init",),
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("student", "vila train student --variant {variant}",
          deps=("models/{dataset}/vila_init", "work/{dataset}/features", "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "data.augment", "evaluate.batch_size",
                  CONVERGENCE, "variants.{variant}", *(f"train.student.{k}" for k in (*OPTIM_KEYS, *STUDENT_KEYS))),
          outs=("models/{dataset}/{variant}",), foreach="variant",
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("evaluate_teacher", "vila evaluate --variant uniform_{frames}f",
          deps=("models/{dataset}/uniform_{frames}f", "work/{dataset}/features", "work/{dataset}/dataset"),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample"),
          outs=(), results=("results/{dataset}/eval/uniform_{frames}f.json",), foreach="frames",
          threads="evaluate", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("evaluate_student", "vila evaluate --variant {variant}",
          deps=("models/{dataset}/{variant}", "work/{dataset}/features", "work/{dataset}/frames",
                "work/{dataset}/dataset"),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample"),
          outs=(), results=("results/{dataset}/eval/{variant}.json",), foreach="variant",
          threads="evaluate", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("uniform_answerer", "vila train uniform-answerer",
          deps=("models/{dataset}/backbone", "work/{dataset}/features", "work/{dataset}/frames"),
          params=READER_PARAMS,
          outs=("models/{dataset}/sevila_answerer_uniform_4f",),
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("pseudolabel", "vila pseudolabel",
          help="SeViLA's self-refinement labels: each frame of each training question read alone by the Answerer",
          deps=("models/{dataset}/sevila_answerer_uniform_4f", "models/{dataset}/backbone", "work/{dataset}/features",
                "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "threads.train", "evaluate.batch_size"),
          outs=("work/{dataset}/pseudo_labels",),
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 240))),
    Stage("localizer", "vila train localizer",
          deps=("models/{dataset}/sevila_answerer_uniform_4f", "models/{dataset}/backbone",
                "work/{dataset}/pseudo_labels", "work/{dataset}/features", "work/{dataset}/frames"),
          params=("seed", "cpu_isa", "threads.train", "data.frames", "evaluate.batch_size", CONVERGENCE,
                  "sevila.localizer"),
          outs=("models/{dataset}/sevila_localizer",),
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("localize", "vila localize",
          help="SeViLA's trained Localizer scores every frame of every train and val question (its Answerers' frames)",
          deps=("models/{dataset}/sevila_localizer", "work/{dataset}/features", "work/{dataset}/frames"),
          params=("cpu_isa", "threads.train", "evaluate.batch_size"),
          outs=("work/{dataset}/localized",),
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 240))),
    Stage("answerer", "vila train answerer --frames {keyframes}",
          deps=("models/{dataset}/backbone", "work/{dataset}/localized", "work/{dataset}/features",
                "work/{dataset}/frames"),
          params=READER_PARAMS,
          outs=("models/{dataset}/sevila_answerer_{keyframes}f",), foreach="keyframes",
          threads="train", seeded=True, resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("sevila", "vila sevila --frames {keyframes}",
          deps=("models/{dataset}/sevila_answerer_{keyframes}f", "models/{dataset}/sevila_localizer"),
          params=("data.frames",),
          outs=("models/{dataset}/sevila_{keyframes}f",), foreach="keyframes",
          threads="train", seeded=True, resources=(("mem_mb", 16000), ("runtime", 30))),
    Stage("sevila_uniform_answerer", "vila sevila --frames 4 --uniform-answerer",
          deps=("models/{dataset}/sevila_answerer_uniform_4f", "models/{dataset}/sevila_localizer"),
          params=("data.frames",),
          outs=("models/{dataset}/sevila_4f_uniform_answerer",),
          threads="train", seeded=True, resources=(("mem_mb", 16000), ("runtime", 30))),
    Stage("evaluate_sevila", "vila evaluate --variant sevila_{keyframes}f",
          deps=("models/{dataset}/sevila_{keyframes}f", "work/{dataset}/features", "work/{dataset}/dataset"),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample"),
          outs=(), results=("results/{dataset}/eval/sevila_{keyframes}f.json",), foreach="keyframes",
          threads="evaluate", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("evaluate_sevila_uniform_answerer", "vila evaluate --variant sevila_4f_uniform_answerer",
          deps=("models/{dataset}/sevila_4f_uniform_answerer", "work/{dataset}/features", "work/{dataset}/dataset"),
          params=("dataset", "cpu_isa", "threads.evaluate", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample"),
          outs=(), results=("results/{dataset}/eval/sevila_4f_uniform_answerer.json",),
          threads="evaluate", seeded=True, resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
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
          seeded=True, resources=(("mem_mb", 4000), ("runtime", 10))),
    Stage("summary", "vila summary",
          help="the figures DVC reads as metrics: accuracy and key-frame recall per variant, speed-ups",
          deps=("results/{dataset}/eval", "results/{dataset}/speed.json"),
          params=(),
          outs=(), metrics=("results/{dataset}/metrics.json",),
          resources=(("mem_mb", 1000), ("runtime", 5))),
    Stage("report", "vila report",
          help="execute the notebooks with papermill and render reports/*.html",
          deps=("paper-figures.yaml", "results/{dataset}/eval", "results/{dataset}/speed.json",
                "results/{dataset}/comparisons.json", "results/{dataset}/metrics.json", "models/{dataset}",
                "work/{dataset}/dataset", "work/{dataset}/frames"),
          params=("dataset", "report.selection_examples"),
          outs=("reports/table1.html", "reports/table2.html", "reports/speed.html", "reports/training.html"),
          notebooks=("notebooks/table1.ipynb", "notebooks/table2.ipynb", "notebooks/speed.ipynb",
                     "notebooks/training.ipynb")),
)
# A study seed's outputs, as vila/paths.py lays them out (study_root), with {seed} for the wildcard.
STUDY_ROOT = f"{study_root(0).parent}/{{seed}}/"


def _seeded_outputs(stages: tuple[Stage, ...]) -> set[str]:
    return {o for st in stages if st.seeded for o in (*st.outs, *st.results, *st.metrics)}


def _shared_outputs(stages: tuple[Stage, ...]) -> set[str]:
    return {o for st in stages if not st.seeded for o in (*st.outs, *st.results, *st.metrics)}


def study_path(path: str, seeded: set[str]) -> str:
    """A seeded stage's output (or a folder holding some) at {seed}; anything else is shared by every seed. An
    output template matches any value of its placeholders (reweight reads models/{dataset}/uniform_4f, which
    the teacher stage writes as models/{dataset}/uniform_{frames}f)."""
    def pattern(template: str) -> str:
        parts = re.split(r"(\{\w+\})", template)
        return "".join(r"[^/]+" if re.fullmatch(r"\{\w+\}", x) and x != "{dataset}" else re.escape(x) for x in parts)

    if path in _shared_outputs(STAGES):  # models/{dataset}/backbone is no {variant}
        return path
    folder = re.escape(path.rstrip("/")) + "/"
    inside = any(re.fullmatch(pattern(o), path) or re.match(folder, o) for o in seeded)
    return STUDY_ROOT + path if inside else path


def study_twin(stage: Stage, seeded: set[str]) -> Stage:
    """The seed study's copy of a seeded stage: the same command at `--seed {seed}` (vila.config.at_seed)."""
    return dataclasses.replace(
        stage, name=f"{stage.name}_seeds", base=stage.name, help="",
        cmd=stage.cmd.replace("vila ", "vila --seed {seed} ", 1),
        deps=tuple(study_path(d, seeded) for d in stage.deps),
        outs=tuple(STUDY_ROOT + o for o in stage.outs), results=tuple(STUDY_ROOT + r for r in stage.results),
        metrics=tuple(STUDY_ROOT + m for m in stage.metrics))


STUDY_STAGES: tuple[Stage, ...] = (
    *(study_twin(st, _seeded_outputs(STAGES)) for st in STAGES if st.seeded),
    Stage("seeds", "vila seeds",
          help="the seed study: every seed's figures, mean and sd across seeds, each claim's verdict at every seed",
          deps=("results/{dataset}/eval", "results/{dataset}/comparisons.json", "study/seeds",
                "work/{dataset}/dataset"),
          params=("seed", "seeds_study", "evaluate.split", "compare"),
          outs=("reports/seeds.html",), results=("study/results/{dataset}/comparisons.json",),
          notebooks=("notebooks/seeds.ipynb",), resources=(("mem_mb", 4000), ("runtime", 10))),
)
# The selection study (vila/selector_study.py): one answerer, every selector. Snakemake: `reproduce_selection`;
# DVC: selection/dvc.yaml, apart from dvc.yaml for the same reason as the seed study's.
SELECTION_STAGES: tuple[Stage, ...] = (
    Stage("reader", "vila train reader --frames {budget}",
          deps=("models/{dataset}/backbone", "models/{dataset}/vila_init", "work/{dataset}/features",
                "work/{dataset}/frames"),
          params=(*READER_PARAMS, "selection.random_seed"),
          outs=("models/selection/{dataset}/reader_{budget}f",), foreach="budget",
          threads="train", resources=(("gpu", 1), ("mem_mb", 64000), ("runtime", 720))),
    Stage("scores", "vila scores --source {scorer}",
          deps=("models/{dataset}/{scorer}", "work/{dataset}/features", "work/{dataset}/frames", "work/{dataset}/dataset"),
          params=("cpu_isa", "threads.evaluate", "evaluate.batch_size"),
          outs=("work/{dataset}/scores/{scorer}.npz",), results=("results/{dataset}/scores/{scorer}.json",),
          foreach="scorer", threads="evaluate", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 120))),
    Stage("select", "vila select --selector {selector} --frames {budget}",
          deps=("models/selection/{dataset}/reader_{budget}f", "work/{dataset}/scores", "results/{dataset}/scores",
                "work/{dataset}/features", "work/{dataset}/frames", "work/{dataset}/dataset"),
          params=("seed", "cpu_isa", "threads.evaluate", "data.frames", "evaluate.split", "evaluate.batch_size",
                  "evaluate.chosen_sample", "selection"),
          outs=(), results=("results/{dataset}/selection/{selector}_{budget}f.json",), foreach=("selector", "budget"),
          threads="evaluate", resources=(("gpu", 1), ("mem_mb", 32000), ("runtime", 60))),
    Stage("selection", "vila selection",
          help="the selection study's report: every selector read by one answerer, its recall and its cost",
          deps=("results/{dataset}/selection", "results/{dataset}/scores", "results/{dataset}/speed.json",
                "results/{dataset}/eval", "models/selection/{dataset}", "work/{dataset}/dataset",
                "work/{dataset}/frames"),
          params=("dataset", "data.frames", "selection", "compare", "train.convergence"),
          outs=("reports/selection.html",), notebooks=("notebooks/selection.ipynb",),
          resources=(("mem_mb", 4000), ("runtime", 10))),
)
ALL_STAGES = STAGES + STUDY_STAGES + SELECTION_STAGES
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
    return next(s for s in ALL_STAGES if s.name == name)


def plain_commands() -> dict[str, Stage]:
    """Stages that are a plain `vila <name>` command (the CLI's subcommands of that name)."""
    return {s.name: s for s in ALL_STAGES if s.cmd == f"vila {s.name}"}


PLOTS = [
    {"Training loss": {"template": "linear", "x": "step",
                       "y": {"models/${dataset}/uniform_32f/dvclive/plots/metrics/train/loss.tsv": "loss",
                             "models/${dataset}/vila_4f/dvclive/plots/metrics/train/loss.tsv": "loss"}}},
    {"Validation accuracy": {"template": "linear", "x": "step",
                             "y": {"models/${dataset}/uniform_32f/dvclive/plots/metrics/val/accuracy.tsv": "accuracy",
                                   "models/${dataset}/uniform_4f/dvclive/plots/metrics/val/accuracy.tsv": "accuracy",
                                   "models/${dataset}/vila_4f/dvclive/plots/metrics/val/accuracy.tsv": "accuracy"}}},
]


DVC_ITEMS = {"frames": "${train.teacher.frames}", "variant": "${variants}", "keyframes": "${sevila.frames}",
             "seed": "${seeds_study}", "scorer": "${selection.scorers}", "selector": "${selection.selectors}",
             "budget": "${selection.frames}"}


def _dvc(text: str, stage: Stage) -> str:
    """A stage-list path or command in DVC's templating: ${dataset}; a foreach stage's ${item} / ${key}; a seed-study
    twin's matrix ${item.<wildcard>}."""
    text = text.replace("{dataset}", "${dataset}")
    if stage.matrix:
        for w in stage.wildcards:
            text = text.replace(f"{{{w}}}", f"${{item.{w}}}")
        return text
    if stage.foreach:
        return text.replace(f"{{{stage.foreach}}}", "${key}" if stage.foreach == "variant" else "${item}")
    return text


def render_dvc(stages: tuple[Stage, ...] = STAGES, wdir: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for st in stages:
        body: dict[str, Any] = {"cmd": _dvc(st.cmd, st), "deps": [_dvc(d, st) for d in stage_deps(st)],
                                "params": [_dvc(p, st) for p in st.params]}
        if wdir:
            body = {"wdir": wdir, **body}
        if not body["params"]:
            del body["params"]
        if st.outs:
            body["outs"] = [_dvc(o, st) for o in st.outs]
        if st.results:
            body.setdefault("outs", []).extend({_dvc(r, st): {"cache": False}} for r in st.results)
        if st.metrics:
            body["metrics"] = [{_dvc(m, st): {"cache": False}} for m in st.metrics]
        if st.matrix:
            out[st.name] = {"matrix": {w: DVC_ITEMS[w] for w in st.wildcards}, **body}
        elif st.foreach:
            out[st.name] = {"foreach": DVC_ITEMS[st.foreach], "do": body}
        else:
            out[st.name] = body
    return {"stages": out}


HEADER = "# Generated by `vila pipeline` from vila/pipeline.py (the stage list). Do not edit by hand.\n"
STUDY_DVC_YAML = Path("study") / "dvc.yaml"
SELECTION_DVC_YAML = Path("selection") / "dvc.yaml"


def dvc_yaml_text() -> str:
    return HEADER + yaml.safe_dump({**render_dvc(), "plots": PLOTS}, sort_keys=False, width=120)


def study_dvc_yaml_text() -> str:
    """The seed study's pipeline (`dvc repro study/dvc.yaml`): its stages run from the project root (wdir ..) and
    read params.yaml there."""
    study = {"vars": ["../params.yaml"], **render_dvc(STUDY_STAGES, wdir="..")}
    return HEADER + yaml.safe_dump(study, sort_keys=False, width=120)


def selection_dvc_yaml_text() -> str:
    """The selection study's pipeline (`dvc repro selection/dvc.yaml`), run from the project root like the study's."""
    selection = {"vars": ["../params.yaml"], **render_dvc(SELECTION_STAGES, wdir="..")}
    return HEADER + yaml.safe_dump(selection, sort_keys=False, width=120)


def write_dvc_yaml(params: str = "params.yaml", check: bool = False) -> None:
    for path, text in ((Path("dvc.yaml"), dvc_yaml_text()), (STUDY_DVC_YAML, study_dvc_yaml_text()),
                       (SELECTION_DVC_YAML, selection_dvc_yaml_text())):
        if check:
            if not path.exists() or path.read_text() != text:
                print(f"{path} differs from vila/pipeline.py; run `vila pipeline` to regenerate it", file=sys.stderr)
                raise SystemExit(1)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def job_values(params: dict[str, Any], stage: Stage) -> list[dict[str, Any]]:
    """One dict of wildcard values per job of a stage."""
    choices = {"frames": params["train"]["teacher"]["frames"], "variant": list(params["variants"]),
               "keyframes": params["sevila"]["frames"], "seed": params["seeds_study"],
               "scorer": params["selection"]["scorers"], "selector": params["selection"]["selectors"],
               "budget": params["selection"]["frames"]}
    values: list[dict[str, Any]] = [{}]
    for w in stage.wildcards:
        values = [{**v, w: c} for v in values for c in choices[w]]
    return values


def expand(params: dict[str, Any], stages: tuple[Stage, ...] = STAGES) -> list[dict[str, Any]]:
    """Every job of the DAG with concrete paths (what both front-ends must agree on)."""
    jobs = []
    for st in stages:
        for v in job_values(params, st):
            fmt = {"dataset": params["dataset"], **v}
            jobs.append({
                "stage": st.name,
                "cmd": st.cmd.format(**fmt),
                "deps": sorted(d.format(**fmt) for d in stage_deps(st)),
                "params": sorted(p.format(**fmt) for p in st.params),
                "outs": sorted(o.format(**fmt) for o in (*st.outs, *st.results, *st.metrics)),
            })
    return jobs
