"""ViLA's Frame-Prompter: scores every sampled frame, optionally guided by the question, and picks K of them with a
hard, straight-through Gumbel-softmax (one per segment as released, or a free top-k). And ours, beyond the paper:
relevance distillation, the loss that pulls the Prompter's per-segment distribution towards the frozen teacher's
frame relevance (teacher_frame_relevance, below)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from vila.models.modeling import ViLAModel


def gumbel_like(x: torch.Tensor) -> torch.Tensor:
    u = torch.rand_like(x).clamp_(1e-9, 1.0 - 1e-9)
    return -torch.log(-torch.log(u))


class FramePrompter(nn.Module):
    """Scores T frames and selects K of them with a hard straight-through Gumbel-softmax.

    gate "visual" (the released code): score = MLP(frame feature).
    gate "text" (the paper): the question attends over the frame's patch tokens; the gate reads the
    frame feature and the question-matched pooled feature. MLP = linear -> LayerNorm -> ReLU -> linear.
    """

    def __init__(self, vision_dim: int, text_dim: int, hidden: int, select: int, mode: str, gate: str) -> None:
        super().__init__()
        if mode not in ("segment", "topk") or gate not in ("text", "visual"):
            raise ValueError(f"unknown prompter mode/gate {mode!r}/{gate!r}")
        self.select, self.mode, self.gate_kind = select, mode, gate
        self.frame_proj = nn.Linear(vision_dim, hidden)
        gate_in = hidden
        if gate == "text":
            self.text_proj = nn.Linear(text_dim, hidden)
            self.key_proj = nn.Linear(vision_dim, hidden)
            self.value_proj = nn.Linear(vision_dim, hidden)
            gate_in = 2 * hidden
        self.gate = nn.Sequential(nn.Linear(gate_in, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def scores(self, tokens: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        """tokens [B, T, N, D] (per-frame patch tokens), text [B, Dt] -> scores [B, T]."""
        feature = self.frame_proj(tokens.mean(dim=2))
        if self.gate_kind == "text":
            if text is None:
                raise ValueError("the text-guided gate needs the question embedding")
            q = self.text_proj(text)  # [B, H]
            # The question attends over each frame's patches: key_proj(patch) . q, softmax over the patches, the
            # weighted sum of value_proj(patch). Both are linear, so neither projects every patch: a key . q is
            # patch . (W_k^T q) + b_k . q, and (weights summing to 1) the pooled value is value_proj of the pooled
            # patch. The same function at a fraction of the cost (the per-patch projections were most of a step).
            key_q = q @ self.key_proj.weight  # [B, D]
            logits = torch.einsum("btnd,bd->btn", tokens, key_q) + (self.key_proj.bias * q).sum(-1)[:, None, None]
            attn = torch.softmax(logits / math.sqrt(q.shape[-1]), dim=-1)  # [B, T, N]
            pooled = self.value_proj(torch.einsum("btn,btnd->btd", attn, tokens))  # [B, T, H]
            feature = torch.cat([feature, pooled * q[:, None, :]], dim=-1)
        return self.gate(feature).squeeze(-1)

    def select_frames(
        self, scores: torch.Tensor, tau: float, noisy: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """scores [B, T] -> (weights [B, K, T] one-hot in value, straight-through in gradient; indices [B, K])."""
        b, t = scores.shape
        k = self.select
        logits = scores + gumbel_like(scores) if noisy else scores
        if self.mode == "segment":
            seg = logits.view(b, k, t // k)
            soft = torch.softmax(seg / tau, dim=-1)
            local = seg.argmax(dim=-1)  # [B, K]
            hard = F.one_hot(local, t // k).to(soft.dtype)
            w_seg = hard - soft.detach() + soft
            weights = torch.zeros(b, k, t, dtype=scores.dtype, device=scores.device)
            for s in range(k):  # place each segment's weights at its frame positions
                weights[:, s, s * (t // k) : (s + 1) * (t // k)] = w_seg[:, s]
            indices = local + torch.arange(k, device=scores.device) * (t // k)
        else:
            soft = torch.softmax(logits / tau, dim=-1)
            indices = logits.topk(k, dim=-1).indices.sort(dim=-1).values
            hard = F.one_hot(indices, t).to(soft.dtype)  # [B, K, T]
            weights = hard - soft.detach()[:, None] + soft[:, None]
        return weights, indices


def relevance_loss(scores: torch.Tensor, relevance: torch.Tensor, select: int, mode: str) -> torch.Tensor:
    """Cross-entropy from the teacher's frame relevance [B, T] (normalised per segment, or over all T frames
    for a free top-k) to the Prompter's distribution softmax(scores) over the same frames."""
    b, t = scores.shape
    groups = (b, select, t // select) if mode == "segment" else (b, 1, t)
    rel = relevance.view(groups)
    target = rel / rel.sum(-1, keepdim=True).clamp(min=1e-12)
    return -(target * torch.log_softmax(scores.view(groups), dim=-1)).sum(-1).mean()


def teacher_frame_relevance(
    model: ViLAModel,
    vit_tokens: torch.Tensor,
    qformer_ids: torch.Tensor,
    qformer_mask: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
) -> torch.Tensor:
    """How much the teacher's answer depends on each frame [B, T]: |gradient x input| of the right
    letter's log-probability (among the letters) w.r.t. the teacher branch's tokens, summed per frame.
    The teacher reads all T frames through its own Q-Former and the shared frozen LLM."""
    assert model.teacher is not None, "frame relevance needs the teacher branch (re_weight)"
    b, t = vit_tokens.shape[:2]
    with torch.enable_grad():
        tokens = model.qformer_tokens(vit_tokens, qformer_ids, qformer_mask, branch=model.teacher).detach()
        tokens.requires_grad_(True)
        letters = torch.tensor(model.config.letter_ids, device=tokens.device)
        every_frame = torch.arange(t, device=tokens.device).expand(b, t)
        timed = model.add_time_signal(tokens, every_frame)
        logits = model.answer_logits(timed, input_ids, attention_mask)[:, letters].float()
        log_prob = torch.log_softmax(logits, dim=-1).gather(1, labels[:, None]).sum()
        (grad,) = torch.autograd.grad(log_prob, tokens)
    return (grad * tokens).float().sum(-1).view(b, t, -1).sum(-1).abs()
