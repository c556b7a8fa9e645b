"""The DAG: the stage list (stages.py), each stage's code dependencies (closure.py), the DVC pipeline files
derived from it (dvcfile.py)."""
