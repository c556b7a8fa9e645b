REPORTS = ["table1", "table2", "speed", "training"]


rule report:
    input:
        code("report.py"),
        "notebooks",
        "paper-figures.yaml",
        expand(f"results/{DATASET}/eval/{{model}}.json", model=MODELS),
        f"results/{DATASET}/speed.json",
        expand(f"models/{DATASET}/{{model}}", model=MODELS),
        f"work/{DATASET}/dataset",
        f"work/{DATASET}/frames",
    output:
        expand("reports/{name}.html", name=REPORTS),
    params:
        values=stage_params("report"),
    shell:
        "vila report"


rule reproduce_table1:
    input:
        "reports/table1.html",


rule reproduce_table2:
    input:
        "reports/table2.html",


rule reproduce_speed:
    input:
        "reports/speed.html",


rule all:
    input:
        expand("reports/{name}.html", name=REPORTS),
    default_target: True
