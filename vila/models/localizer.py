"""SeViLA's Localizer, the baseline of the paper's claims: its own Q-Former, query tokens, LayerNorm on the ViT
output and projection; it scores each frame through the model's frozen LLM (ViLAModel.localizer_logits: the "yes"
logit of one pass per frame), and the k best frames, in time order, go to the Answerer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import InstructBlipConfig

from vila.models.distiller import TeacherBranch

if TYPE_CHECKING:
    from vila.models.modeling import ViLAModel


class Localizer(TeacherBranch):
    """SeViLA's Localizer: its own Q-Former, query tokens, LayerNorm on the ViT output and projection to the
    LLM width; it scores frames through the model's frozen LLM (ViLAModel.localizer_logits)."""

    def __init__(self, config: InstructBlipConfig) -> None:
        super().__init__(config)
        self.ln_vision = nn.LayerNorm(config.vision_config.hidden_size)


def localizer_digest(model: ViLAModel) -> str:
    """sha256 of a SeViLA model's Localizer weights (names and bytes): whose frame scores a cache holds."""
    import hashlib

    assert model.localizer is not None, "localizer_digest needs a SeViLA model"
    digest = hashlib.sha256()
    for name, tensor in sorted(model.localizer.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def top_k_in_time_order(scores: torch.Tensor, k: int) -> torch.Tensor:
    """SeViLA's key frames: the k highest-scoring frames [..., T] -> [..., k], put back in time order. One definition:
    the model's selection step and the Answerer's training frames (vila/training/sevila.py) both take it."""
    return scores.topk(k, dim=-1).indices.sort(dim=-1).values
