"""Reports: papermill-executed notebooks rendered to offline HTML (render.py), and the tables and figures the
notebooks show (tables.py: Table 1, claims, Table 2, speed; training.py; selection.py; seeds.py; index.py)."""
