"""params.yaml -> validated config.

The schema in workflow/schemas/params.schema.yaml is the one definition of what params.yaml may
hold; Snakemake validates with it too. Cross-field rules that a JSON schema cannot express live in
`cross_field_errors`. Every error names the key and what was expected, in one line.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from vila.io import read_yaml
from vila.models.registry import SEVILA_K, model_kinds, model_names, reader_name, teacher_name

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "params.schema.yaml"


class ParamsError(ValueError):
    """params.yaml does not satisfy the schema or a cross-field rule."""


def load_schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _key_path(error: Any) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _describe(error: Any) -> str:
    """One line per schema error: the offending key and what the schema expected."""
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        instance = error.instance if isinstance(error.instance, dict) else {}
        allowed = set(error.schema.get("properties", {}))
        for sub in error.schema.get("allOf", []):
            ref = sub.get("$ref", "")
            if ref:
                allowed |= set(_resolve_ref(ref).get("properties", {}))
        unknown = sorted(k for k in instance if k not in allowed)
        if not unknown:  # a known key failed a check inside allOf; that error is reported on its own
            return ""
        where = _key_path(error)
        names = ", ".join(f"{where}.{k}" if where != "(top level)" else k for k in unknown)
        return f"unknown key {names} (allowed here: {', '.join(sorted(allowed))})"
    return f"{_key_path(error)}: {error.message}"


_SCHEMA_CACHE: dict[str, Any] = {}


def _resolve_ref(ref: str) -> dict[str, Any]:
    schema = _SCHEMA_CACHE.setdefault("schema", load_schema())
    node: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def schema_errors(params: Any) -> list[str]:
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(load_schema())
    validator = validator_cls(load_schema())
    return sorted({d for e in validator.iter_errors(params) if (d := _describe(e))})


def student_settings(params: dict[str, Any], variant: str) -> dict[str, Any]:
    """train.student with the variant's overrides applied."""
    if variant not in params["variants"]:
        raise ParamsError(f"variants.{variant}: no such student variant (have: {', '.join(params['variants'])})")
    merged = copy.deepcopy(params["train"]["student"])
    merged.update(params["variants"][variant])
    return merged


def at_seed(params: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """params for a job of the seed study: the backbone, training and evaluation at `seed` (params["seed"] := seed)
    with the outputs under .../seeds/<seed>/ (Paths reads `study_seed`). The backbone is re-seeded too: it stands in
    for released pretrained weights, and a verdict should not rest on one draw of them. `seed` None or equal to
    params["seed"]: params unchanged (Table 1's own models)."""
    if seed is None or seed == params["seed"]:
        return params
    return {**params, "seed": seed, "study_seed": seed}


def cross_field_errors(params: dict[str, Any]) -> list[str]:
    from vila.data.registry import DATASETS

    if params["dataset"] not in DATASETS:  # the rest reads dataset-specific settings
        return [f"dataset: {params['dataset']!r} is not one of {', '.join(DATASETS)}"]
    errors = []
    frames = params["data"]["frames"]
    teacher_frames = params["train"]["teacher"]["frames"]
    for n in teacher_frames:
        if n > frames:
            errors.append(f"train.teacher.frames: {n} is more than data.frames ({frames}) decoded per clip")
        elif frames % n:
            errors.append(f"train.teacher.frames: {n} does not divide data.frames ({frames}) into equal intervals")
    if frames not in teacher_frames:
        errors.append(f"train.teacher.frames: must include data.frames ({frames}), the distillation teacher")
    checks = [("train.student", params["train"]["student"])]
    checks += [
        (f"variants.{v}", student_settings(params, v))
        for v, overrides in params["variants"].items()
        if {"select", "selector"} & set(overrides)
    ]
    for where, s in checks:
        if s["select"] > frames:
            errors.append(f"{where}.select: {s['select']} selected frames exceed data.frames ({frames}) sampled")
        elif s["selector"] == "segment" and frames % s["select"]:
            errors.append(
                f"{where}.select: {frames} sampled frames (data.frames) cannot be split into {s['select']} equal segments"
            )
        if where == "train.student" and s["select"] not in teacher_frames:  # re_weight builds vila_init from it
            errors.append(f"{where}.select: {s['select']} needs a {teacher_name(s['select'])} model in train.teacher.frames")
    for k in params["sevila"]["frames"]:
        if k > frames:
            errors.append(f"sevila.frames: {k} key frames exceed data.frames ({frames}) sampled")
    if SEVILA_K not in params["sevila"]["frames"]:
        errors.append(f"sevila.frames: must include {SEVILA_K} (SeViLA's k: the baseline of the claims and of its "
                      "ablations)")
    others = {name for name, kind in model_kinds(params).items() if kind != "student"}
    clash = set(params["variants"]) & (others | {reader_name(k) for k in params["selection"]["frames"]})
    if clash:
        errors.append(f"variants: {sorted(clash)} is the name of a teacher, SeViLA or reader model")
    errors += selection_errors(params)
    if params["seed"] in params["seeds_study"]:
        errors.append(f"seeds_study: lists seed {params['seed']}; the study's other seeds only (seed's own models are "
                      "Table 1's and join the study as they are)")
    tau = params["train"]["student"]["tau"]
    if tau["end"] > tau["start"]:
        errors.append(f"train.student.tau.end: {tau['end']} must be <= tau.start ({tau['start']})")
    if params["dataset"] == "synthqa" and params["data"]["frames"] != 32:
        errors.append("data.frames: the embedded synthqa clips have 32 frames; set data.frames: 32")
    errors += weights_params_errors(params)
    return errors


def weights_params_errors(params: dict[str, Any]) -> list[str]:
    """Dataset against backbone, before any stage runs: the embedded backbone (model.weights null) exists only for
    synthqa with the tiny preset; any other run reads a complete InstructBLIP directory on disk."""
    from vila.models.weights import HOW_TO_GET_WEIGHTS, weights_errors

    weights, preset = params["model"]["weights"], params["model"]["preset"]
    if not weights and params["dataset"] != "synthqa":
        return [f"model.weights: null, but dataset {params['dataset']} needs InstructBLIP weights on disk (the "
                f"embedded backbone exists only for synthqa): {HOW_TO_GET_WEIGHTS}"]
    if not weights and preset != "tiny":
        return [f"model.weights: null, but the {preset} preset needs a local InstructBLIP directory: {HOW_TO_GET_WEIGHTS}"]
    return weights_errors(weights)


def selection_errors(params: dict[str, Any]) -> list[str]:
    """The selection study: a reader per k, and every score a selector reads among the cached ones."""
    from vila.selection.registry import score_source

    sel, errors = params["selection"], []
    frames = params["data"]["frames"]
    for k in sel["frames"]:
        if k > frames or frames % k:
            errors.append(f"selection.frames: {k} does not divide data.frames ({frames}) into equal intervals (the "
                          "reader's uniform frame sets)")
    models = {"backbone", *model_names(params)}
    for source in sel["scorers"]:
        if source not in models:
            errors.append(f"selection.scorers: {source!r} is not a model of the DAG (backbone, {', '.join(sorted(models - {'backbone'}))})")
    for selector in sel["selectors"]:
        for k in sel["frames"]:
            source = score_source(selector, k, params)
            if source is not None and source not in sel["scorers"]:
                errors.append(f"selection.scorers: selector {selector} at k={k} reads the scores of {source}; list it")
    return errors


def validate(params: Any, source: str = "params.yaml") -> dict[str, Any]:
    errors = schema_errors(params)
    if not errors:
        errors = cross_field_errors(params)
    if errors:
        raise ParamsError(f"{source}: " + f"\n{source}: ".join(errors))
    return params


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """params from `path`, validated; every error names the file (and the key, where one is at fault)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found (run from the project root, or pass --params)")
    try:
        params = read_yaml(path, "the run's params, a YAML mapping")
    except (OSError, ValueError) as e:
        raise ParamsError(str(e)) from None
    return validate(params, str(path))


def lookup(params: dict[str, Any], dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        node = node[part]
    return node
