"""Frame selection without a trained model (rules.py) and the selection study: one answerer, every selector
(study.py)."""
