"""Training: the one loop and its convergence rule (loop.py), the backbone (backbone.py), the fine-tuning of every
model that reads given frames (fit.py: the uniform teachers, SeViLA's Answerers, the selection study's readers),
ViLA's re_weight and students (students.py), and SeViLA's chain (sevila.py)."""
