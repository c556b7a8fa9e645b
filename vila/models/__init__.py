"""Models: the InstructBLIP video backbone (modeling.py), the Frame-Prompter (prompter.py), the QFormer-Distiller
(distiller.py), SeViLA's Localizer (localizer.py), the backbone's grounding heads (grounding.py), and every model's name
and kind (registry.py)."""
