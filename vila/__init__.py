"""ViLA reproduction: question-aware frame selection and QFormer distillation on InstructBLIP."""

__version__ = "0.1.0"
