"""FLOPs per question, counted with torch.utils.flop_counter.FlopCounterMode (2 FLOPs per multiply-add).

The count runs the model's own forward steps (ViLAModel.steps: vit, select, qformer, llm) on one question of
the given prompt lengths, each step under its own counter, so it counts exactly what the forward pass does:
on the meta device for the full-size preset (nothing is allocated) and on the CPU for the tiny one. What each
design runs, for T sampled frames, K read:

  uniform_Nf        N x ViT + N x Q-Former + T5(N*Q visual tokens + prompt)
  vila (vit input)  T x ViT + Prompter(T) + K x Q-Former + T5(K*Q + prompt)          (as released)
  vila (fast)       T x patch-embed + Prompter(T) + K x ViT + K x Q-Former + T5(K*Q + prompt)
  sevila            T x ViT + T x (Localizer Q-Former + T5(`Frame: ` + Q + localizer prompt, 1 decoder step))
                    + K x Q-Former + T5(K*(marks + Q) + prompt)

T5 = encoder over visual tokens + prompt, plus the two decoder steps that reach the answer letter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from vila.models.modeling import STEP_NAMES, ForwardPass, ViLAConfig, ViLAModel


def _count(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def one_question(config: ViLAConfig, prompt_tokens: int, question_tokens: int,
                 localizer_tokens: int | None = None) -> ForwardPass:
    """Inputs of one question at the ViT's resolution, on the current default device: every sampled frame for a
    selecting model, the N frames it reads for a uniform one; SeViLA's Localizer prompt (default: as long as the
    answer prompt)."""
    vc = config.backbone_config.vision_config
    given = config.sampled_frames if config.selector else config.frames
    frames = torch.zeros(1, given, vc.image_size, vc.image_size, 3, dtype=torch.uint8)
    qids = torch.ones(1, question_tokens, dtype=torch.long)
    ids = torch.ones(1, prompt_tokens, dtype=torch.long)
    loc = torch.ones(1, localizer_tokens or prompt_tokens, dtype=torch.long) if config.selector == "localizer" else None
    # No attention masks: every token is real, and masks would make the meta device read values.
    index = torch.arange(given).expand(1, -1)  # positions only feed the time signal; their values cost nothing
    return ForwardPass(qids, None, ids, None, frames=frames, frame_index=index, localizer_ids=loc)


def step_flops(model: ViLAModel, prompt_tokens: int, question_tokens: int,
               localizer_tokens: int | None = None) -> dict[str, int]:
    """{vit, select, qformer, llm, total}: FLOPs of each forward step for one question."""
    with torch.device(model.query_tokens.device), torch.inference_mode():
        p = one_question(model.config, prompt_tokens, question_tokens, localizer_tokens)
        parts = {}
        for name, step in model.steps():
            parts[name] = _count(lambda step=step: step(p))
    out = {name: parts[name] for name in STEP_NAMES}
    out["total"] = sum(out.values())
    return out


def inference_design(config: ViLAConfig, backbone: dict[str, Any] | None = None) -> ViLAConfig:
    """What a model computes to answer, without what only training reads (the teacher branch, LoRA adapters
    merged or not, where it was loaded from): models of one design cost the same, whatever their weights."""
    overrides: dict[str, Any] = {"distill": False, "lora": None, "_name_or_path": ""}
    if backbone is not None:
        overrides["backbone"] = backbone
    return ViLAConfig(**{**config.to_dict(), **overrides})


def design_key(config: ViLAConfig) -> str:
    return inference_design(config).to_json_string(use_diff=False)


def flops_table(configs: dict[str, ViLAConfig], prompt_tokens: int, question_tokens: int, device: str,
                backbone: dict[str, Any] | None = None, localizer_tokens: int | None = None) -> dict[str, dict[str, int]]:
    """variant -> {vit, select, qformer, llm, total} FLOPs per question. `backbone`: other sizes than the
    configs' own (e.g. the flant5xl preset, on the meta device); the design (frames, selector, ...) is kept.
    Variants of one design (they differ only in how they were trained) are counted once."""
    out: dict[str, dict[str, int]] = {}
    counted: dict[str, dict[str, int]] = {}
    for name, config in configs.items():
        design = inference_design(config, backbone)
        key = design.to_json_string(use_diff=False)
        if key not in counted:
            with torch.device(device):
                model = ViLAModel(design).eval()
            counted[key] = step_flops(model, prompt_tokens, question_tokens, localizer_tokens)
        out[name] = dict(counted[key])
    return out
