"""The DVC pipeline files derived from the stage list: dvc.yaml (Table 1's DAG), study/dvc.yaml (the seed study)
and selection/dvc.yaml (the selection study), written by `vila pipeline` (CI checks they are current)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from vila.models.registry import SEVILA_ABLATIONS
from vila.paths import STUDY, Paths
from vila.pipeline.closure import stage_deps
from vila.pipeline.stages import (
    PARAM_PLACEHOLDERS,
    SELECTION_STAGES,
    STAGES,
    STUDY_STAGES,
    Stage,
    stage_by_name,
)


def plots(params: dict[str, Any]) -> list[dict[str, Any]]:
    """`dvc plots show`: the training curves of the distillation teacher, the student's own-budget teacher and the
    first student variant (DVCLive's files in each model's directory; vila/paths.py), named from params."""
    from vila.models.registry import reweight_teachers

    small, large = reweight_teachers(params)
    student = next(iter(params["variants"]))
    layout = Paths("${dataset}")

    def curves(names: tuple[str, ...], metric: str) -> dict[str, str]:
        return {str(layout.curve(name, metric)): metric.rpartition("/")[2] for name in names}

    return [{"Training loss": {"template": "linear", "x": "step", "y": curves((large, student), "train/loss")}},
            {"Validation accuracy": {"template": "linear", "x": "step",
                                     "y": curves((large, small, student), "val/accuracy")}}]


DVC_ITEMS = {"frames": "${train.teacher.frames}", "variant": "${variants}", "keyframes": "${sevila.frames}",
             "seed": "${seeds_study}", "scorer": "${selection.scorers}", "selector": "${selection.selectors}",
             "budget": "${selection.frames}", "ablation": list(SEVILA_ABLATIONS)}


WEIGHTS = "model.weights"
# A stage that reads the weights depends on their directory (DVC hashes it; an external path is fine). Only when
# params.yaml sets one: DVC cannot template a null path, so `vila pipeline` writes the pipeline for the params.
WEIGHTS_DEP = "${model.weights}"


def weights_dependency_missing(params: dict[str, Any], root: Path = Path(".")) -> str | None:
    """Run by DVC (a stage that reads model.weights): why its pipeline file does not make the weights a dependency,
    or None when it does or no weights are set."""
    if not params["model"]["weights"]:
        return None
    for path in (root / "dvc.yaml", root / STUDY_DVC_YAML):
        if path.is_file() and WEIGHTS_DEP not in path.read_text():
            return (f"{path}: model.weights is set in params.yaml but is not a dependency of the stages that read it; "
                    "run `vila pipeline` (it writes the pipeline files for params.yaml), then `dvc repro` again")
    return None


def study_items(params: dict[str, Any], stage: Stage) -> dict[str, Any]:
    """A seed-study twin's matrix: the study's models only (stages.job_values), written out as lists (DVC cannot
    filter a params list); `vila pipeline --check` fails when params.yaml changes them without a regeneration."""
    from vila.pipeline.stages import job_values

    values = job_values(params, stage)
    return {w: DVC_ITEMS[w] if w == "seed" else sorted({v[w] for v in values}, key=lambda x: (str(type(x)), x))
            for w in stage.wildcards}


def _dvc(text: str, stage: Stage) -> str:
    """A stage-list path or command in DVC's templating: the params placeholders as ${key} (${dataset},
    ${train.student.select}, ...); a foreach stage's ${item} / ${key}; a seed-study twin's matrix ${item.<wildcard>}."""
    for name, key in PARAM_PLACEHOLDERS.items():
        text = text.replace(f"{{{name}}}", f"${{{key}}}")
    if stage.matrix:
        for w in stage.wildcards:
            text = text.replace(f"{{{w}}}", f"${{item.{w}}}")
        return text
    if stage.foreach:
        return text.replace(f"{{{stage.foreach}}}", "${key}" if stage.foreach == "variant" else "${item}")
    return text


def render_dvc(stages: tuple[Stage, ...] = STAGES, wdir: str | None = None,
               params: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for st in stages:
        body: dict[str, Any] = {"desc": st.help or stage_by_name(st.base).help, "cmd": _dvc(st.cmd, st),
                                "deps": [_dvc(d, st) for d in stage_deps(st)], "params": [_dvc(p, st) for p in st.params]}
        if WEIGHTS in st.params and params and params["model"]["weights"]:
            body["deps"].append(WEIGHTS_DEP)  # by content: new weights at the same path rerun the stage
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
            items = study_items(params, st) if st.base and params else {w: DVC_ITEMS[w] for w in st.wildcards}
            out[st.name] = {"matrix": items, **body}
        elif st.foreach:
            out[st.name] = {"foreach": DVC_ITEMS[st.foreach], "do": body}
        else:
            out[st.name] = body
    return {"stages": out}


HEADER = "# Generated by `vila pipeline` from vila/pipeline/stages.py (the stage list). Do not edit by hand.\n"
STUDY_DVC_YAML = STUDY / "dvc.yaml"
SELECTION_DVC_YAML = Path("selection") / "dvc.yaml"


def dvc_yaml_text(params: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump({**render_dvc(params=params), "plots": plots(params)}, sort_keys=False, width=120)


def study_dvc_yaml_text(params: dict[str, Any]) -> str:
    """The seed study's pipeline (`dvc repro study/dvc.yaml`): its stages run from the project root (wdir ..) and
    read params.yaml there."""
    study = {"vars": ["../params.yaml"], **render_dvc(STUDY_STAGES, wdir="..", params=params)}
    return HEADER + yaml.safe_dump(study, sort_keys=False, width=120)


def selection_dvc_yaml_text(params: dict[str, Any] | None = None) -> str:
    """The selection study's pipeline (`dvc repro selection/dvc.yaml`), run from the project root like the study's."""
    selection = {"vars": ["../params.yaml"], **render_dvc(SELECTION_STAGES, wdir="..", params=params)}
    return HEADER + yaml.safe_dump(selection, sort_keys=False, width=120)


def write_dvc_yaml(params: str = "params.yaml", check: bool = False) -> None:
    from vila.config import load_params

    values = load_params(params)
    for path, text in ((Path("dvc.yaml"), dvc_yaml_text(values)), (STUDY_DVC_YAML, study_dvc_yaml_text(values)),
                       (SELECTION_DVC_YAML, selection_dvc_yaml_text(values))):
        if check:
            if not path.exists() or path.read_text() != text:
                print(f"{path} differs from the stage list (vila/pipeline/stages.py); run `vila pipeline` to regenerate it", file=sys.stderr)
                raise SystemExit(1)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


