REPORTS = [Path(o).stem for o in stage_by_name("report").outs]


rule reproduce_table1:
    input:
        "reports/table1.html",


rule reproduce_table2:
    input:
        "reports/table2.html",


rule reproduce_speed:
    input:
        "reports/speed.html",


# The seed study: the claims' models at each of seeds_study besides `seed` (whose models are Table 1's), each seed with
# its own backbone, then the summary across seeds (vila/evaluation/seeds.py). Not part of `all`: its own target,
# timed in the README's Cost section.
rule reproduce_seeds:
    input:
        "reports/seeds.html",


# The selection study: every selector of selection.selectors at each k of selection.frames, read by the same
# answerer (vila/selection/study.py). Not part of `all`: its own target, timed in the README.
rule reproduce_selection:
    input:
        "reports/selection.html",


rule all:
    input:
        expand("reports/{name}.html", name=REPORTS),
    default_target: True
