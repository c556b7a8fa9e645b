import sys

from snakemake.exceptions import WorkflowError

from vila.config import ParamsError, lookup
from vila.config import validate as validate_params
from vila.pipeline import STAGES

try:
    validate_params(config, "params.yaml")
except ParamsError as error:
    sys.exit(f"Invalid configuration: {error}")

DATASET = config["dataset"]
FRAMES = config["train"]["teacher"]["frames"]
VARIANTS = list(config["variants"])
MODELS = [f"uniform_{n}f" for n in FRAMES] + VARIANTS


wildcard_constraints:
    frames=r"\d+",
    variant="|".join(VARIANTS),


def stage_params(stage, **wildcards):
    """Values of the params keys a stage reads (vila/pipeline.py): Snakemake reruns a job when they change."""
    keys = next(s.params for s in STAGES if s.name == stage)
    return {key.format(**wildcards): lookup(config, key.format(**wildcards)) for key in keys}


def torch_threads(kind):
    """A torch job's threads: params.yaml's `threads.<kind>` (vila/cli.py sets torch to the same count)."""
    return config["threads"][kind]


def all_cores():
    """Every core a local run has (the speed stage times alone); on a cluster (no --cores) 8, or set-threads."""
    try:
        return workflow.cores
    except WorkflowError:
        return 8


def code(*files):
    return [f"vila/{f}" for f in files]
