rule evaluate_teacher:
    input:
        code("evaluation.py", "cpu.py", "data/metrics.py"),
        f"models/{DATASET}/uniform_{{frames}}f",
        f"work/{DATASET}/features",
        f"work/{DATASET}/dataset",
    output:
        f"results/{DATASET}/eval/uniform_{{frames}}f.json",
    threads: torch_threads("evaluate")
    params:
        values=stage_params("evaluate_teacher"),
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=120,
    shell:
        "vila evaluate --variant uniform_{wildcards.frames}f"


rule evaluate_student:
    input:
        code("evaluation.py", "cpu.py", "data/metrics.py"),
        f"models/{DATASET}/{{variant}}",
        f"work/{DATASET}/features",
        f"work/{DATASET}/frames",
        f"work/{DATASET}/dataset",
    output:
        f"results/{DATASET}/eval/{{variant}}.json",
    threads: torch_threads("evaluate")
    params:
        values=stage_params("evaluate_student"),
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=120,
    shell:
        "vila evaluate --variant {wildcards.variant}"


rule speed:
    input:
        code("speed.py", "cpu.py", "models/flops.py"),
        expand(f"models/{DATASET}/{{model}}", model=MODELS),
        f"work/{DATASET}/frames",
    output:
        f"results/{DATASET}/speed.json",
    threads: all_cores()
    params:
        values=stage_params("speed"),
    resources:
        mem_mb=16000,
        runtime=60,
    shell:
        "vila speed"
