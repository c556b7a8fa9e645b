"""ViLA's QFormer-Distiller: a frozen teacher branch (the many-frame model's Q-Former, query tokens and projection)
encodes all T frames; the student's K*Q projected tokens are mapped along the token axis to T*Q tokens and matched
to the teacher's with an MSE loss (ViLAModel.forward)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import InstructBlipConfig, InstructBlipQFormerModel


class TokenAxisMapper(nn.Module):
    """Maps the student's K*Q tokens to T*Q tokens along the token axis (linear + LayerNorm)."""

    def __init__(self, student_tokens: int, teacher_tokens: int, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(student_tokens, teacher_tokens)
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(tokens.transpose(1, 2)).transpose(1, 2))


class TeacherBranch(nn.Module):
    """The frozen 32-frame model's Q-Former, query tokens and projection."""

    def __init__(self, config: InstructBlipConfig) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, config.qformer_config.hidden_size))
        self.qformer = InstructBlipQFormerModel._from_config(config.qformer_config)
        self.language_projection = nn.Linear(config.qformer_config.hidden_size, config.text_config.hidden_size)
