"""Evaluation and statistics: predictions and the eval JSONs (evaluate.py), paired statistics (stats.py), every
comparison and claim (compare.py), the seed study across seeds (seeds.py), the per-model metrics DVC reads
(summary.py)."""
