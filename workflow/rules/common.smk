import hashlib
import os
import sys
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError

from vila.config import ParamsError, lookup
from vila.config import validate as validate_params
from vila.io import read_yaml
from vila.models.registry import SEVILA_ABLATIONS
from vila.models.weights import digest_cache, weights_digest
from vila.paths import REPORT_PAGES, Paths
from vila.paths import report as report_page  # Snakemake has its own report()
from vila.pipeline.closure import stage_code
from vila.pipeline.runner import WorkspaceBusy, hold_for_snakemake
from vila.pipeline.stages import ALL_STAGES, STAGES, expand as expand_jobs, fill_params, stage_by_name

def run_params():
    """The params file every job of this run reads: params.yaml, or, when --config/--configfile override it, the
    merged configuration written once to .snakemake/vila-params/ (content-addressed). Jobs find it in VILA_PARAMS
    (the default of `vila --params`): the commands, and so what DVC runs, stay the same; the jobs whose params
    changed rerun (their `values` below), and nothing else does. Every file is read again through vila's reader
    first: Snakemake's YAML loader keeps a duplicated key's last value silently; ours names the file and the key."""
    try:
        for source in ["params.yaml", *map(str, workflow.overwrite_configfiles)]:
            read_yaml(source)
    except (OSError, ValueError) as error:
        sys.exit(f"Invalid configuration: {error}")
    with open("params.yaml") as f:
        if yaml.safe_load(f) == config:
            return "params.yaml", "params.yaml"
    overrides = [str(p) for p in workflow.overwrite_configfiles] or ["--config"]
    text = yaml.safe_dump(config, sort_keys=False)
    path = Path(".snakemake/vila-params") / f"params-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)
    return str(path), f"params.yaml overridden by {', '.join(overrides)}"


RUN_PARAMS, PARAMS_SOURCE = run_params()
try:
    validate_params(config, PARAMS_SOURCE)
except ParamsError as error:
    sys.exit(f"Invalid configuration: {error}")
os.environ["VILA_PARAMS"] = RUN_PARAMS
# One runner per workspace (vila/pipeline/runner.py): a run holds the lock from its start (never a dry run) to its
# end and its jobs run under it; refused while `dvc repro` or a hand-run `vila` stage works here, and they refuse it.
RUNNER_LOCK = []


onstart:
    try:
        RUNNER_LOCK.append(hold_for_snakemake())
    except WorkspaceBusy as error:
        sys.exit(str(error))


DATASET = config["dataset"]
VARIANTS = list(config["variants"])
JOBS = expand_jobs(config, ALL_STAGES)  # every job of the DAG and of the seed study, with concrete paths


wildcard_constraints:
    frames=r"\d+",
    keyframes=r"\d+",
    seed=r"\d+",
    variant="|".join(VARIANTS),
    scorer="|".join(config["selection"]["scorers"]),
    selector="|".join(config["selection"]["selectors"]),
    budget=r"\d+",
    ablation="|".join(SEVILA_ABLATIONS),


def stage_params(stage, **wildcards):
    """Values of the params keys a stage reads (vila/pipeline/stages.py): Snakemake reruns a job when they change.
    model.weights counts by content: new weights at the same path rerun what reads them."""
    keys = stage_by_name(stage).params
    values = {key.format(**wildcards): lookup(config, key.format(**wildcards)) for key in keys}
    if "model.weights" in keys and config["model"]["weights"]:
        values["model.weights.sha256"] = weights_sha256()
    return values


WEIGHTS_SHA256 = []


def weights_sha256():
    """The weights directory's content digest, once per run (each file's hash cached under its size and mtime)."""
    if not WEIGHTS_SHA256:
        WEIGHTS_SHA256.append(weights_digest(config["model"]["weights"], digest_cache()))
    return WEIGHTS_SHA256[0]


def concrete(path):
    """A stage-list path with this run's params ({dataset}, ...); {frames}/{variant}/{keyframes}/{seed} stay
    Snakemake wildcards."""
    return fill_params(path, config)


def stage_inputs(stage):
    """Code dependencies (computed: the import closure of the stage's module), then data dependencies. A
    folder that holds other stages' outputs (DVC reads `models/<dataset>` so) stands for those outputs:
    Snakemake can depend on an output, not on its parent folder. A folder with wildcards (a seed-study job's
    study/seeds/{seed}/results/...) is resolved per job, by an input function."""
    code = list(stage_code(stage))
    outs = sorted({o for job in JOBS for o in job["outs"]})

    def data(dep):
        inside = [o for o in outs if o.startswith(dep.rstrip("/") + "/")]
        return inside if inside and dep not in outs else [dep]

    deps = [concrete(d) for d in stage.deps]
    if not any("{" in d for d in deps):
        return code + [path for d in deps for path in data(d)]

    def inputs(wildcards):
        values = dict(wildcards.items())
        return code + [path for d in deps for path in data(d.format(**values))]

    return inputs


# Snakemake's own report (`make report`): the key outputs, each with its caption (workflow/report/)
REPORTED = {
    str(report_page("table1")): ("table1.rst", "Table 1"),
    str(Paths(DATASET).comparisons_json): ("claims.rst", "Claims"),
    str(report_page("training")): ("training.rst", "Training"),
    str(report_page("benchmark")): ("benchmark.rst", "Benchmark"),
    str(report_page("seeds")): ("seeds.rst", "Seed study"),
    str(report_page("selection")): ("selection.rst", "Selection study"),
}


def stage_outputs(stage):
    """Folders as directory() outputs, files (.json, .html) as they are; the key ones marked for Snakemake's report."""
    out = []
    for p in map(concrete, (*stage.outs, *stage.results, *stage.metrics)):
        if p in REPORTED:
            caption, category = REPORTED[p]
            out.append(report(p, caption=f"../report/{caption}", category=category))
        else:
            out.append(p if Path(p).suffix else directory(p))
    return out


def stage_log(stage):
    """The job's own log file (what the command wrote to stdout and stderr), one per job: its wildcards are in the name."""
    job = "".join(f"_{{{w}}}" for w in stage.wildcards)
    return str(Paths(DATASET).job_log(f"{stage.name}{job}"))


def stage_benchmark(stage):
    """Snakemake's own measurement of the job (wall seconds, CPU seconds, peak memory), beside its log: the
    per-stage times the README states come from these files."""
    return stage_log(stage).removesuffix(".log") + ".benchmark.tsv"


def stage_priority(stage):
    """The order in which ready jobs start (higher first; vila/pipeline/stages.py): the heads of the long chains
    first, so that short jobs fill the cores around them."""
    if callable(stage.priority):
        return lambda wildcards, stage=stage: stage.priority(dict(wildcards.items()), config)
    return stage.priority


def stage_threads(stage):
    """A count; a kind of params.yaml's threads.* (vila/cli.py sets torch to the same count); or every core."""
    if stage.threads == "all":
        return all_cores()
    return torch_threads(stage.threads) if isinstance(stage.threads, str) else stage.threads


def torch_threads(kind):
    """A torch job's threads: params.yaml's `threads.<kind>` (vila/cli.py sets torch to the same count)."""
    return config["threads"][kind]


def all_cores():
    """Every core a local run has (the speed stage times alone); on a cluster (no --cores) 8, or set-threads."""
    try:
        return workflow.cores
    except WorkflowError:
        return 8
