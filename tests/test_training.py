"""The training loop: schedule, resume after a kill with identical results, early stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vila.training import TrainSettings, lr_factor, train

X = torch.from_numpy(np.random.default_rng(0).normal(size=(64, 8))).float()
Y = (X[:, 0] > 0).long()


class Killed(Exception):
    pass


def settings(**kw):
    base = {"epochs": 3, "batch_size": 8, "lr": 0.05, "weight_decay": 0.01, "warmup_steps": 2, "grad_accum": 2,
            "grad_clip": 1.0, "patience": 5, "max_steps": 0, "checkpoint_every": 1, "seed": 7}
    return TrainSettings(**{**base, **kw})


def load(idx, rng, shard):
    """Data only (runs in DataLoader workers when workers > 0): inputs with data noise, and labels."""
    idx = idx[shard]
    return X[idx] + torch.from_numpy(rng.normal(size=(len(idx), 8))).float() * 0.01, Y[idx]


def fit(ckpt, kill_at=None, workers=0, **kw):
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)
    seen = []

    def loss(batch, gstep):
        if kill_at is not None and gstep == kill_at and not seen:
            seen.append(gstep)
            raise Killed
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x + torch.randn(len(x), 8) * 0.01), y)

    def evaluate():
        return float((model(X).argmax(-1) == Y).float().mean())

    metrics = train(model, [{"params": list(model.parameters())}], len(X), load, loss, evaluate, settings(**kw),
                    ckpt, None, "test", workers=workers)
    return model, metrics


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0, 4, 20) == 0.25 and lr_factor(3, 4, 20) == 1.0
    assert lr_factor(4, 4, 20) == pytest.approx(1.0) and lr_factor(20, 4, 20) == pytest.approx(0.0)
    assert lr_factor(12, 4, 20) == pytest.approx(0.5)


def test_resume_after_kill_gives_identical_weights_and_metrics(tmp_path):
    ref, ref_metrics = fit(tmp_path / "a")
    with pytest.raises(Killed):
        fit(tmp_path / "b", kill_at=5)
    assert (tmp_path / "b" / "state.json").exists()
    resumed, metrics = fit(tmp_path / "b")
    assert metrics["resumed"]
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert metrics["history"] == ref_metrics["history"]
    assert metrics["best_val_accuracy"] == ref_metrics["best_val_accuracy"]


def test_same_seed_same_weights(tmp_path):
    a, _ = fit(tmp_path / "a")
    b, _ = fit(tmp_path / "b")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_dataloader_workers_load_the_same_batches(tmp_path):
    """Loading steps ahead in 2 worker processes changes nothing: same weights, same losses."""
    a, ma = fit(tmp_path / "a", workers=0)
    b, mb = fit(tmp_path / "b", workers=2)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert ma["history"] == mb["history"]


def test_early_stopping_and_max_steps(tmp_path):
    _, m = fit(tmp_path / "a", epochs=50, patience=1, lr=1e-9)
    assert m["epochs_run"] < 50
    _, m = fit(tmp_path / "b", max_steps=3)
    assert m["steps"] == 3

