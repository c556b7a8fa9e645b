"""FLOPs per question, counted with torch.utils.flop_counter.FlopCounterMode (2 FLOPs per multiply-add).

Each component is run once on its real input shapes: on the meta device for large presets (nothing is
allocated) and on the CPU for the tiny one. A variant's cost is composed from the components it runs:

  uniform_Nf        N x ViT + N x Q-Former + T5(N*Q visual tokens + prompt)
  vila (vit input)  T x ViT + Prompter(T) + K x Q-Former + T5(K*Q + prompt)          (as released)
  vila (fast)       T x patch-embed + Prompter(T) + K x ViT + K x Q-Former + T5(K*Q + prompt)

T5 = encoder over visual tokens + prompt, plus the two decoder steps that reach the answer letter.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from vila.models.modeling import FramePrompter, ViLAConfig, ViLAModel


def _count(fn: Any) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _plain_model(config: ViLAConfig, device: str) -> ViLAModel:
    with torch.device(device):
        return ViLAModel(ViLAConfig(**{**config.to_dict(), "selector": None, "distill": False, "lora": None}))


def component_flops(model: ViLAModel, question_tokens: int = 16) -> dict[str, int]:
    """FLOPs of one call of each component for one question."""
    config = model.config
    bb = config.backbone_config
    with torch.device(model.query_tokens.device):
        vc = bb.vision_config
        pixels = torch.zeros(1, 3, vc.image_size, vc.image_size)
        n_tokens = (vc.image_size // vc.patch_size) ** 2 + 1
        vit_tokens = torch.zeros(1, 1, n_tokens, vc.hidden_size)
        qids = torch.ones(1, question_tokens, dtype=torch.long)
        prompter_text = FramePrompter(vc.hidden_size, bb.qformer_config.hidden_size, config.prompter_hidden,
                                      config.frames, "segment", "text")
        flops = {
            "vit_frame": _count(lambda: model.vision_model(pixel_values=pixels)),
            "patch_embed_frame": _count(lambda: model.vision_model.embeddings.patch_embedding(pixels)),
            "qformer_frame": _count(lambda: model.qformer_tokens(vit_tokens, qids, None)),
            "prompter_frame": _count(lambda: prompter_text.scores(vit_tokens, torch.zeros(1, bb.qformer_config.hidden_size))),
        }
    return flops


def variant_flops(c: dict[str, int], frames_read: int, sampled: int, selector: str | None,
                  selector_input: str, llm: int) -> dict[str, int]:
    """Per-component FLOPs of one question for a variant (see the module docstring)."""
    if selector is None:
        parts = {"vit": frames_read * c["vit_frame"], "select": 0}
    elif selector_input == "patch_embed":
        parts = {"vit": frames_read * c["vit_frame"],
                 "select": sampled * (c["patch_embed_frame"] + c["prompter_frame"])}
    else:
        parts = {"vit": sampled * c["vit_frame"], "select": sampled * c["prompter_frame"]}
    parts["qformer"] = frames_read * c["qformer_frame"]
    parts["llm"] = llm
    return parts


def llm_flops(model: ViLAModel, frames: int, prompt_tokens: int) -> int:
    bb = model.config.backbone_config
    with torch.device(model.query_tokens.device):
        visual = torch.zeros(1, frames * bb.num_query_tokens, bb.text_config.d_model)
        ids = torch.ones(1, prompt_tokens, dtype=torch.long)
        return _count(lambda: model.answer_logits(visual, ids, None))


def flops_table(config: ViLAConfig, variants: dict[str, dict[str, Any]], sampled: int, prompt_tokens: int,
                question_tokens: int, device: str) -> dict[str, dict[str, int]]:
    """variant -> {vit, select, qformer, llm, total} FLOPs per question.

    variants: name -> {"frames": frames read, "selector": None|..., "selector_input": ...}.
    """
    model = _plain_model(config, device)
    comp = component_flops(model, question_tokens)
    llm_cache: dict[int, int] = {}
    out = {}
    for name, v in variants.items():
        n = v["frames"]
        if n not in llm_cache:
            llm_cache[n] = llm_flops(model, n, prompt_tokens)
        parts = variant_flops(comp, n, sampled, v.get("selector"), v.get("selector_input", "vit"), llm_cache[n])
        parts["total"] = sum(parts.values())
        out[name] = parts
    return out
