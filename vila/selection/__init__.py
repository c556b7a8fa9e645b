"""Frame selection: the selectors, one entry each (registry.py), the rules without a trained model (rules.py), and
the selection study: one answerer, every selector (study.py)."""
