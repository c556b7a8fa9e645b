"""Full-size latency (InstructBLIP Flan-T5-XL sizes, random weights) of uniform_32f, vila_4f, vila_4f_fast and
SeViLA's sevila_4f (the paper's reference) on a CUDA GPU, in the speed.json contract. Random weights are fine for timing: latency does
not depend on the values. Without a GPU it says so and stops, writing nothing.

    vila speed-full --out results/fullsize/speed.json
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from vila.data.sampling import uniform_indices
from vila.io import write_json
from vila.models.registry import SEVILA_K, SPEED_REFERENCE, speedup_key, teacher_name

log = logging.getLogger(__name__)
# The paper's setting at full size: 32 sampled frames, ViLA and SeViLA reading SeViLA's k of them (params.yaml's
# embedded run may sample otherwise; this command times the architecture the paper reports).
SAMPLED = 32
VARIANTS: dict[str, dict[str, Any]] = {
    teacher_name(SAMPLED): {"frames": SAMPLED, "selector": None},
    "vila_4f": {"frames": SEVILA_K, "selector": "segment"},
    "vila_4f_fast": {"frames": SEVILA_K, "selector": "segment", "selector_input": "patch_embed"},
    SPEED_REFERENCE: {"frames": SEVILA_K, "selector": "localizer", "frame_prefix": True},
}
REFERENCES = (teacher_name(SAMPLED), SPEED_REFERENCE)
TIMED = ("random uint8 frames (32 x 224 x 224) + random token ids (48 prompt, 16 question; SeViLA's Localizer "
         "prompt 60) on the GPU -> answer letter; bf16 autocast, fp32 weights, CUDA-synchronised")


class NoGPU(RuntimeError):
    pass


def _call(model: Any, bs: int, spec: dict[str, Any], device: Any) -> Any:
    """One timed call: random inputs of the full-size shapes, bf16 autocast, synchronised."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(0)
    frames = torch.randint(0, 256, (bs, 32, 224, 224, 3), dtype=torch.uint8, generator=g).to(device)
    if spec["selector"] is None:
        frames = frames[:, torch.from_numpy(uniform_indices(32, spec["frames"], None, 1)[0])]  # interval middles
    ids = torch.randint(5, 1000, (bs, 48), generator=g).to(device)
    qids = torch.randint(5, 1000, (bs, 16), generator=g).to(device)
    nopt = torch.full((bs,), 4, device=device)
    loc = torch.randint(5, 1000, (bs, 60), generator=g).to(device) if spec["selector"] == "localizer" else None

    def call() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(qids, torch.ones_like(qids), ids, torch.ones_like(ids), nopt, frames=frames, localizer_ids=loc,
                  localizer_mask=None if loc is None else torch.ones_like(loc))
        torch.cuda.synchronize()

    return call


def train_step(base: Any, batch_size: int, repeats: int, warmup: int) -> dict[str, Any]:
    """One vila_4f student optimisation step at full size: cached ViT features in (the training input),
    LM loss + distiller, backward through the frozen LLM with gradient checkpointing, AdamW; bf16 autocast."""
    import torch

    from vila.models.build import freeze_for_finetuning
    from vila.models.modeling import ViLAConfig, ViLAModel
    from vila.speed.latency import time_call
    from vila.training.fit import place_for_training

    device = torch.device("cuda")
    cfg = ViLAConfig(**{**base.to_dict(), "frames": 4, "selector": "segment", "distill": True})
    with torch.device(device):
        model = ViLAModel(cfg).train()
    place_for_training(model, {"model": {"gradient_checkpointing": True}})
    names = set(freeze_for_finetuning(model))
    params = [p for n, p in model.named_parameters() if n in names]
    opt = torch.optim.AdamW(params, lr=1e-5)
    vc = cfg.backbone_config.vision_config
    g = torch.Generator(device="cpu").manual_seed(0)
    tokens = (vc.image_size // vc.patch_size) ** 2 + 1
    batch = {
        "vit_tokens": torch.randn(batch_size, 32, tokens, vc.hidden_size, generator=g).to(device),
        "qformer_ids": torch.randint(5, 1000, (batch_size, 16), generator=g).to(device),
        "input_ids": torch.randint(5, 1000, (batch_size, 48), generator=g).to(device),
        "num_options": torch.full((batch_size,), 4, device=device),
        "labels": torch.zeros(batch_size, dtype=torch.long, device=device),
    }
    batch["qformer_mask"] = torch.ones_like(batch["qformer_ids"])
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch, tau=1.0, distill_weight=0.01).loss
        loss.backward()
        opt.step()
        torch.cuda.synchronize()

    torch.cuda.reset_peak_memory_stats()
    times = time_call(step, warmup, repeats)
    result = {"variant": "vila_4f", "batch_size": batch_size, "median_ms": statistics.median(times),
              "p90_ms": float(np.percentile(times, 90)), "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20,
              "trainable_parameters": sum(p.numel() for p in params), "gradient_checkpointing": True,
              "timed": "forward (LM loss + distiller) + backward + AdamW step from cached ViT features, bf16 autocast"}
    return result


def run(batch_sizes: list[int], repeats: int, warmup: int, out: Path, train_batch_size: int = 8) -> dict[str, Any]:
    import torch

    from vila.models.flops import flops_table
    from vila.models.modeling import ViLAConfig, ViLAModel
    from vila.models.presets import backbone_config
    from vila.speed.latency import time_call

    if not torch.cuda.is_available():
        raise NoGPU("vila speed-full: no CUDA device here; the full-size latency needs a GPU (about 20 GB of memory "
                    "for one fp32 Flan-T5-XL model). Nothing was written.")
    device = torch.device("cuda")
    base = ViLAConfig(backbone=backbone_config("flant5xl").to_dict(), frames=4, sampled_frames=32,
                      answer_prefix_ids=[3], letter_ids=[71, 272, 205, 309, 262],  # T5's ids; values do not matter
                      frame_prefix_ids=[[7, 100 + i, 10] for i in range(32)], localizer_prefix_ids=[7, 10],
                      yes_no_ids=[4273, 150])
    latency: dict[str, dict[str, dict[str, float]]] = {}
    memory: dict[str, float] = {}
    for name, spec in VARIANTS.items():
        cfg = ViLAConfig(**{**base.to_dict(), "selector_input": "vit", **spec})
        log.info("full size: timing %s", name)
        with torch.device(device):
            model = ViLAModel(cfg).eval()
        latency[name] = {}
        for bs in batch_sizes:
            torch.cuda.reset_peak_memory_stats()
            times = time_call(_call(model, bs, spec, device), warmup, repeats)
            latency[name][str(bs)] = {"median": statistics.median(times), "p90": float(np.percentile(times, 90))}
            memory[f"{name}@{bs}"] = torch.cuda.max_memory_allocated() / 2**20
        del model
        torch.cuda.empty_cache()
    training = train_step(base, train_batch_size, repeats, warmup)
    torch.cuda.empty_cache()
    largest = str(max(batch_sizes))
    configs = {n: ViLAConfig(**{**base.to_dict(), "selector_input": "vit", **spec}) for n, spec in VARIANTS.items()}
    flops = flops_table(configs, 48, 16, device="meta")
    result = {
        "device": torch.cuda.get_device_name(0), "threads": torch.get_num_threads(), "batch_sizes": batch_sizes,
        "repeats": repeats, "warmup": warmup, "timed": TIMED, "latency_ms": latency,
        "flops": {"flant5xl": {n: t["total"] for n, t in flops.items()}}, "peak_memory_mb": memory,
        "speedup": {speedup_key(n, r): latency[r][largest]["median"] / latency[n][largest]["median"]
                    for r in REFERENCES for n in VARIANTS if n != r},
        "train_step": training,
    }
    write_json(out, result)
    for n in VARIANTS:
        log.info("full size %-13s batch %s: %.1f ms median (%s)", n, largest, latency[n][largest]["median"], TIMED)
    log.info("full size vila_4f training step, batch %d: %.1f ms median, %.0f MB peak (%s)", train_batch_size,
             training["median_ms"], training["peak_memory_mb"], training["timed"])
    return result
