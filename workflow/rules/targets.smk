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


rule all:
    input:
        expand("reports/{name}.html", name=REPORTS),
    default_target: True
