# One rule per stage of vila/pipeline/stages.py's stage list (and per seed-study twin, `<stage>_seeds`, at {seed}): inputs (the computed code dependencies, then the data),
# outputs, params, threads and resources all come from that list (each job also writes its own log file,
# logs/<dataset>/<stage>[_<frames|variant>].log), as dvc.yaml's stages do. A torch job's
# threads are params.yaml's `threads.*` (vila sets torch to exactly that many, so the figures do not depend on
# the machine); with 2 cores, two 1-thread trainings run side by side. Resources are sized for the full-size
# (Flan-T5-XL) run on a cluster; a training job launches one process per GPU SLURM gives it (vila/cli.py).
for _stage in ALL_STAGES:

    rule:
        name:
            _stage.name
        input:
            stage_inputs(_stage),
        output:
            stage_outputs(_stage),
        log:
            stage_log(_stage),
        benchmark:
            stage_benchmark(_stage)
        threads: stage_threads(_stage)
        priority: stage_priority(_stage)
        params:
            values=lambda wildcards, name=_stage.name: stage_params(name, **dict(wildcards.items())),
            # the command as a param: a `shell:` expression would be evaluated when the job runs, and see the
            # loop's last stage (the default argument binds this one)
            cmd=lambda wildcards, stage=_stage: stage.cmd.format(**dict(wildcards.items())),
        resources:
            **dict(_stage.resources),
        shell:
            # Snakemake runs this under `set -o pipefail`: the job fails when the command does
            "{params.cmd} 2>&1 | tee {log}"
