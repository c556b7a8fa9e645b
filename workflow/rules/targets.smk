rule reproduce_table1:
    input:
        str(report_page("table1")),


rule reproduce_table2:
    input:
        str(report_page("table2")),


rule reproduce_speed:
    input:
        str(report_page("speed")),


# The seed study: the claims' models at each of seeds_study besides `seed` (whose models are Table 1's), each seed with
# its own backbone, then the summary across seeds (vila/evaluation/seeds.py). Not part of `all`: its own target,
# timed in the README's Cost section.
rule reproduce_seeds:
    input:
        str(report_page("seeds")),


# The selection study: every selector of selection.selectors at each k of selection.frames, read by the same
# answerer (vila/selection/study.py). Not part of `all`: its own target, timed in the README.
rule reproduce_selection:
    input:
        str(report_page("selection")),


rule all:
    input:
        [str(report_page(name)) for name in REPORT_PAGES],  # the report stage's pages
    default_target: True
