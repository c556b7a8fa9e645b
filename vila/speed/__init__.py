"""Speed: every model timed end to end on this machine with its per-step breakdown, FLOPs and memory
(latency.py); the full-size architecture's latency on a GPU (fullsize.py)."""
