"""The training loop: schedule, resume after a kill with identical results, early stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vila.training.loop import TrainSettings, beats, lr_factor, plateaued, smoothed, train

X = torch.from_numpy(np.random.default_rng(0).normal(size=(64, 8))).float()
Y = (X[:, 0] > 0).long()


class Killed(Exception):
    pass


def settings(**kw):
    base = {"max_epochs": 3, "batch_size": 8, "lr": 0.05, "weight_decay": 0.01, "warmup_steps": 2, "grad_accum": 2,
            "grad_clip": 1.0, "patience": 5, "window": 1, "min_epochs": 0, "max_steps": 0, "checkpoint_every": 1, "seed": 7}
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


@pytest.mark.parametrize("curve, converged", [
    ([0.3, 0.5, 0.6, 0.7, 0.75, 0.8], False),  # rising to the end
    ([0.3, 0.5, 0.6, 0.62, 0.64, 0.66, 0.68], False),  # slowly, but still rising
    ([0.3, 0.5, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8], False),  # flat, but the 3-epoch mean reached 0.8 only 2 epochs ago
    ([0.3, 0.5, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8], True),  # ... and 3 epochs ago
    ([0.3, 0.6, 0.8, 0.7, 0.75, 0.72, 0.7, 0.7], True),  # a peak, then below it
    ([0.3, 0.6, 0.8, 0.7, 0.75, 0.72, 0.7, 0.81], False),  # the same, but the latest epoch is the best single one
    ([0.5, 0.8, 0.5, 0.8, 0.5, 0.85, 0.5], False),  # noisy: the smoothed curve reached a new best 1 epoch ago
    ([0.5, 0.8, 0.5, 0.8, 0.5, 0.8, 0.5], True),  # equal to the best is not a new best
    ([0.45, 0.3, 0.3, 0.29, 0.3], False),  # a lucky first epoch: too few full windows after it to judge
    ([0.45, 0.3, 0.3, 0.29, 0.3, 0.28], True),  # the first full window, then 3 epochs below it
    ([0.3, 0.3], False),
    ([], False),
])
def test_convergence_rule_on_constructed_curves(curve, converged):
    """window 3, patience 3: converged once the 3-epoch mean has gone 3 epochs without a new best, and the latest
    epoch is not the best one; the smoothed curve starts at the first full window."""
    assert plateaued(curve, patience=3, window=3) is converged


def test_a_higher_figure_replaces_the_kept_weights_only_beyond_the_noise():
    """On 300 val questions one standard error at 0.29 is 2.6 points: the flat, noisy curve of a model near chance
    keeps its first epoch; a real climb replaces it."""
    curve = [0.290, 0.257, 0.260, 0.253, 0.287, 0.247, 0.270, 0.297, 0.277, 0.297]
    kept = None
    for i, v in enumerate(curve):
        if beats(v, None if kept is None else curve[kept], 300):
            kept = i
    assert kept == 0
    assert beats(0.33, 0.29, 300) and not beats(0.31, 0.29, 300)
    assert beats(0.291, 0.29, None)  # without a val size: any higher figure
    assert not beats(1.0, 1.0, 300) and beats(0.5, None, 300)


def test_no_run_stops_before_min_epochs():
    flat = [0.3] * 12
    assert plateaued(flat[:9], patience=3, window=3, min_epochs=10) is False
    assert plateaued(flat[:10], patience=3, window=3, min_epochs=10) is True  # flat: converged, from epoch 10 on
    assert plateaued(flat[:9], patience=3, window=3, min_epochs=0) is True


def test_smoothed_is_the_trailing_mean_of_full_windows():
    assert smoothed([0.0, 3.0, 6.0, 9.0], 3)[2:] == pytest.approx([3.0, 6.0])
    assert all(np.isnan(smoothed([0.0, 3.0, 6.0, 9.0], 3)[:2]))
    assert smoothed([0.2, 0.4], 1) == [0.2, 0.4]


def test_a_run_stops_once_converged_and_says_so(tmp_path):
    """lr ~0: validation accuracy never changes, so the run stops after `patience` epochs with the first epoch's
    weights, converged; a run capped by max_epochs while improving says it did not converge."""
    _, m = fit(tmp_path / "a", max_epochs=50, patience=2, lr=1e-9)
    assert m["converged"] is True and m["stopped_by"] == "plateau"
    assert m["epochs_run"] == 3 and m["best_epoch"] == 1 and len(m["val_curve"]) == 3
    assert m["convergence_rule"] == {"max_epochs": 50, "min_epochs": 0, "patience": 2, "window": 1}
    _, m = fit(tmp_path / "b", max_epochs=2, patience=5)
    assert m["converged"] is False and m["stopped_by"] == "max_epochs" and m["epochs_run"] == 2
    _, m = fit(tmp_path / "c", max_steps=3)
    assert m["steps"] == 3 and m["converged"] is False and m["stopped_by"] == "max_steps"



def test_without_validation_every_step_runs_and_the_final_weights_are_kept(tmp_path):
    """eval_fn None (the backbone's pretraining on generated data): no early stopping, the last weights."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)

    def loss(batch, gstep):
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x), y)

    def run(epochs: int, ckpt: str) -> tuple[dict, torch.Tensor]:
        torch.manual_seed(0)
        model.reset_parameters()
        m = train(model, [{"params": list(model.parameters())}], len(X), load, loss, None,
                  settings(max_epochs=epochs, patience=1), tmp_path / ckpt, None, "test")
        return m, model.weight.detach().clone()

    one, after_one = run(1, "one")
    m, after_two = run(2, "two")
    assert m["epochs_run"] == 2 and m["steps"] == 2 * 4 and m["best_epoch"] == 2
    assert m["converged"] is None and m["val_curve"] == [] and m["best_val_accuracy"] is None
    assert all(h["val_accuracy"] is None for h in m["history"])
    # the second epoch's updates are in the weights kept: not the first epoch's (no "best" snapshot restored)
    assert one["steps"] == 4 and not torch.equal(after_two, after_one)


def test_backbone_pretraining_runs_in_the_training_loop_and_resumes(tmp_path, monkeypatch):
    """The backbone's pretraining is the one loop's: killed mid-way and resumed, it ends with the same weights."""
    from vila.training import backbone
    from vila.training import loop as training

    params = {"seed": 0, "data": {"synthqa": {"size": 32}, "workers": 0},
              "backbone": {"steps": 4, "batch_size": 4, "lr": 2e-3, "weight_decay": 0.01, "warmup_steps": 1,
                           "checkpoint_every": 2, "max_frames": 4}}
    ref, tok = backbone.embedded_backbone(0)
    metrics = backbone.pretrain_embedded(ref, tok, params, tmp_path / "a")
    assert metrics["steps"] == 4
    real_save = training._save_checkpoint
    calls = []

    def save_then_die(*a, **k):
        real_save(*a, **k)
        calls.append(1)
        raise Killed

    monkeypatch.setattr(training, "_save_checkpoint", save_then_die)
    model, _ = backbone.embedded_backbone(0)
    with pytest.raises(Killed):
        backbone.pretrain_embedded(model, tok, params, tmp_path / "b")
    monkeypatch.undo()
    model, _ = backbone.embedded_backbone(0)
    backbone.pretrain_embedded(model, tok, params, tmp_path / "b")
    assert calls and all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), model.state_dict().values(),
                                                            strict=True))
