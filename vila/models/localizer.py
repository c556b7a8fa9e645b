"""SeViLA's Localizer, the baseline of the paper's claims: its own Q-Former, query tokens, LayerNorm on the ViT
output and projection; it scores each frame through the model's frozen LLM (frame_logits, below: the "yes"
logit of one pass per frame), and the k best frames, in time order, go to the Answerer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from transformers import InstructBlipConfig

from vila.models.distiller import TeacherBranch

if TYPE_CHECKING:
    from vila.models.modeling import ViLAModel


class Localizer(TeacherBranch):
    """SeViLA's Localizer: its own Q-Former, query tokens, LayerNorm on the ViT output and projection to the
    LLM width; it scores frames through the model's frozen LLM (frame_logits, below)."""

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


def frame_logits(
    model: ViLAModel,
    vit_tokens: torch.Tensor,
    qformer_ids: torch.Tensor,
    qformer_mask: torch.Tensor | None,
    localizer_ids: torch.Tensor,
    localizer_mask: torch.Tensor | None,
) -> torch.Tensor:
    """SeViLA's Localizer: one frozen-LLM pass per frame over `Frame: ` + that frame's Q projected query tokens
    + the localizer prompt -> vocabulary logits at the first decoder step [B, T, vocab] (the frame's score is
    the "yes" logit). The B*T passes run as one batch; each row holds one frame."""
    assert model.localizer is not None, "frame_logits needs a SeViLA model (selector 'localizer')"
    loc, lm = model.localizer, model.language_model
    b, t = vit_tokens.shape[:2]
    visual = model.qformer_tokens(loc.ln_vision(vit_tokens), qformer_ids, qformer_mask, branch=loc)
    visual = visual.view(b * t, loc.query_tokens.shape[1], -1)  # one row per frame
    prefix = model.token_embeddings(model.config.localizer_prefix_ids, visual.device).to(visual.dtype)
    prompt = lm.get_input_embeddings()(localizer_ids.repeat_interleave(t, dim=0))
    embeds = torch.cat([prefix.expand(b * t, -1, -1), visual, prompt], dim=1)
    mask = None
    if localizer_mask is not None:
        ones = torch.ones(b * t, prefix.shape[0] + visual.shape[1], dtype=localizer_mask.dtype, device=visual.device)
        mask = torch.cat([ones, localizer_mask.repeat_interleave(t, dim=0)], dim=1)
    start = model.decoder_start_token_id
    decoder_ids = torch.full((b * t, 1), start, dtype=torch.long, device=visual.device)
    logits = lm(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=decoder_ids).logits[:, 0]
    return logits.view(b, t, -1)

def pseudo_label_loss(
    model: ViLAModel,
    vit_tokens: torch.Tensor,
    qformer_ids: torch.Tensor,
    qformer_mask: torch.Tensor | None,
    localizer_ids: torch.Tensor,
    localizer_mask: torch.Tensor | None,
    frame_labels: torch.Tensor,
) -> torch.Tensor:
    """SeViLA's self-refinement loss: the LM loss of "yes" (label 1) or "no" (label 0) for each frame [B, T]."""
    logits = frame_logits(model, vit_tokens, qformer_ids, qformer_mask, localizer_ids, localizer_mask)
    yes, no = model.config.yes_no_ids
    target = torch.where(frame_labels.bool(), yes, no)
    return F.cross_entropy(logits.flatten(0, 1).float(), target.flatten())
