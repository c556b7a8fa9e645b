# A torch job's threads are params.yaml's `threads.*` (vila sets torch to exactly that many, so the figures do
# not depend on the machine); with 2 cores, two 1-thread trainings run side by side. Resources are sized for
# the full-size (Flan-T5-XL) run on a cluster. A training job launches one process per GPU SLURM gives it
# (vila/cli.py: torchrun).
rule backbone:
    input:
        code("backbone.py", "cpu.py", "models/modeling.py", "models/presets.py", "models/tokenizer.py"),
        f"work/{DATASET}/frames",
    output:
        directory(f"models/{DATASET}/backbone"),
        directory(f"work/{DATASET}/features"),
    threads: torch_threads("backbone")
    params:
        values=stage_params("backbone"),
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=240,
    shell:
        "vila backbone"


rule teacher:
    input:
        code("train_models.py", "training.py", "cpu.py", "models/modeling.py"),
        f"models/{DATASET}/backbone",
        f"work/{DATASET}/features",
        f"work/{DATASET}/frames",
    output:
        directory(f"models/{DATASET}/uniform_{{frames}}f"),
    threads: torch_threads("train")
    params:
        values=lambda wc: stage_params("teacher", frames=wc.frames),
    resources:
        gpu=1,
        mem_mb=64000,
        runtime=720,
    shell:
        "vila train teacher --frames {wildcards.frames}"


rule reweight:
    input:
        code("train_models.py"),
        f"models/{DATASET}/uniform_4f",
        f"models/{DATASET}/uniform_32f",
    output:
        directory(f"models/{DATASET}/vila_init"),
    threads: 1
    params:
        values=stage_params("reweight"),
    resources:
        mem_mb=16000,
        runtime=30,
    shell:
        "vila reweight"


rule student:
    input:
        code("train_models.py", "training.py", "cpu.py", "models/modeling.py"),
        f"models/{DATASET}/vila_init",
        f"work/{DATASET}/features",
        f"work/{DATASET}/frames",
    output:
        directory(f"models/{DATASET}/{{variant}}"),
    threads: torch_threads("train")
    params:
        values=lambda wc: stage_params("student", variant=wc.variant),
    resources:
        gpu=1,
        mem_mb=64000,
        runtime=720,
    shell:
        "vila train student --variant {wildcards.variant}"
