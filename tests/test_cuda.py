"""The GPU path: the rank's GPU, bf16 autocast, gradient checkpointing of the frozen LLM.

Skipped without CUDA (CI has none); run on a GPU machine with `python -m pytest tests/test_cuda.py`.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.test_model import batch, student
from vila.device import autocast, to_device
from vila.models.build import freeze_for_finetuning
from vila.training.fit import place_for_training
from vila.training.loop import TrainSettings, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_student_trains_on_the_gpu_under_bf16_autocast_with_checkpointing(backbone, tmp_path):
    model = student(backbone[0])
    place_for_training(model, {"model": {"gradient_checkpointing": True}})
    assert next(model.parameters()).is_cuda and model.language_model.is_activation_checkpointing
    names = set(freeze_for_finetuning(model))
    params = [p for n, p in model.named_parameters() if n in names]
    before = [p.detach().clone() for p in params]
    data = batch(backbone[1])
    seen = []

    def load(idx, rng, shard):
        return dict(data)

    def loss(b, step):
        assert b["vit_tokens"].is_cuda and torch.is_autocast_enabled("cuda")
        out = model(**b, tau=1.0, distill_weight=0.01)
        seen.append(float(out.loss.detach()))
        return out.loss

    settings = TrainSettings(max_epochs=2, batch_size=3, lr=1e-3, weight_decay=0.0, warmup_steps=1, grad_accum=1,
                             grad_clip=1.0, patience=5, window=1, min_epochs=0, max_steps=0, checkpoint_every=1, seed=0)
    train(model, [{"params": params}], 3, load, loss, lambda: 0.0, settings, tmp_path / "ckpt", None, "cuda")
    assert len(seen) == 2 and all(math.isfinite(x) for x in seen)
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, params, strict=True))

    model.eval()
    eval_batch = {k: v for k, v in data.items() if k != "labels"}
    with torch.no_grad(), autocast(torch.device("cuda")):
        out = model(**to_device(eval_batch, torch.device("cuda")))
    assert out.letter_logits.is_cuda and torch.isfinite(out.letter_logits[:, :2]).all()
