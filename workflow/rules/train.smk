# Torch jobs take every core Snakemake has (it sets OMP_NUM_THREADS to `threads`).
rule backbone:
    input:
        code("backbone.py", "models/modeling.py", "models/presets.py", "models/tokenizer.py"),
        f"work/{DATASET}/frames",
    output:
        directory(f"models/{DATASET}/backbone"),
        directory(f"work/{DATASET}/features"),
    threads: workflow.cores
    params:
        values=stage_params("backbone"),
    resources:
        gpu=1,
    shell:
        "vila backbone"


rule teacher:
    input:
        code("train_models.py", "training.py", "models/modeling.py"),
        f"models/{DATASET}/backbone",
        f"work/{DATASET}/features",
        f"work/{DATASET}/frames",
    output:
        directory(f"models/{DATASET}/uniform_{{frames}}f"),
    threads: workflow.cores
    params:
        values=lambda wc: stage_params("teacher", frames=wc.frames),
    resources:
        gpu=1,
    shell:
        "vila train teacher --frames {wildcards.frames}"


rule reweight:
    input:
        code("train_models.py"),
        f"models/{DATASET}/uniform_4f",
        f"models/{DATASET}/uniform_32f",
    output:
        directory(f"models/{DATASET}/vila_init"),
    threads: workflow.cores
    params:
        values=stage_params("reweight"),
    shell:
        "vila reweight"


rule student:
    input:
        code("train_models.py", "training.py", "models/modeling.py"),
        f"models/{DATASET}/vila_init",
        f"work/{DATASET}/features",
        f"work/{DATASET}/frames",
    output:
        directory(f"models/{DATASET}/{{variant}}"),
    threads: workflow.cores
    params:
        values=lambda wc: stage_params("student", variant=wc.variant),
    resources:
        gpu=1,
    shell:
        "vila train student --variant {wildcards.variant}"
