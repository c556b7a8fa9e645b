import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from vila.config import ParamsError, lookup
from vila.config import validate as validate_params
from vila.pipeline import STAGES, expand as expand_jobs, stage_by_name, stage_code

try:
    validate_params(config, "params.yaml")
except ParamsError as error:
    sys.exit(f"Invalid configuration: {error}")

DATASET = config["dataset"]
VARIANTS = list(config["variants"])
JOBS = expand_jobs(config)  # every job of the DAG with concrete paths


wildcard_constraints:
    frames=r"\d+",
    keyframes=r"\d+",
    variant="|".join(VARIANTS),


def stage_params(stage, **wildcards):
    """Values of the params keys a stage reads (vila/pipeline.py): Snakemake reruns a job when they change."""
    keys = next(s.params for s in STAGES if s.name == stage)
    return {key.format(**wildcards): lookup(config, key.format(**wildcards)) for key in keys}


def concrete(path):
    """A stage-list path for this dataset; {frames}/{variant}/{keyframes} stay Snakemake wildcards."""
    return path.replace("{dataset}", DATASET)


def stage_inputs(stage):
    """Code dependencies (computed: the import closure of the stage's module), then data dependencies. A
    folder that holds other stages' outputs (DVC reads `models/<dataset>` so) stands for those outputs:
    Snakemake can depend on an output, not on its parent folder."""
    inputs = list(stage_code(stage))
    outs = sorted({o for job in JOBS for o in job["outs"]})
    for dep in map(concrete, stage.deps):
        inside = [o for o in outs if o.startswith(dep.rstrip("/") + "/")]
        inputs += inside if inside and dep not in outs and "{" not in dep else [dep]
    return inputs


def stage_outputs(stage):
    """Folders as directory() outputs, files (.json, .html) as they are."""
    paths = map(concrete, (*stage.outs, *stage.results, *stage.metrics))
    return [p if Path(p).suffix else directory(p) for p in paths]


def stage_log(stage):
    """The job's own log file (what the command wrote to stdout and stderr), one per job: its wildcards are in the name."""
    job = {"frames": "_{frames}", "variant": "_{variant}", "keyframes": "_{keyframes}"}.get(stage.foreach, "")
    return f"logs/{DATASET}/{stage.name}{job}.log"


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
