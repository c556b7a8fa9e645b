rule download:
    input:
        code("data/download.py", "data/synthqa.py", "data/video.py", "data/convert.py", "data/real.py"),
        "data",
    output:
        directory(f"work/{DATASET}/dataset"),
    params:
        values=stage_params("download"),
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "vila download"


rule preprocess:
    input:
        code("data/preprocess.py", "data/video.py", "data/dataset.py", "data/prompts.py"),
        f"work/{DATASET}/dataset",
    output:
        directory(f"work/{DATASET}/frames"),
    params:
        values=stage_params("preprocess"),
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "vila preprocess"
