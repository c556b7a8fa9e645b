"""SeViLA, the baseline: the pseudo-label rule, one frame per Localizer pass, top-k in time order, frame marks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vila.data.dataset import Batcher, QASplit
from vila.models.build import derive
from vila.models.localizer import frame_logits, pseudo_label_loss
from vila.models.modeling import ForwardPass, ViLAModel
from vila.training.sevila import label_quality, single_frame_correct

T = 32


def items(n: int) -> list[dict]:
    return [{"qid": f"Interaction_q{i}", "video": f"v{i}", "question": "where did the red object appear ?",
             "a0": "top left", "a1": "top right", "a2": "bottom left", "a3": "bottom right", "num_option": 4,
             "answer": i % 4, "keyframes": [i % T]} for i in range(n)]


class FrameReader(torch.nn.Module):
    """A stand-in Answerer whose answer is read off its one frame: option = round(token[0, 0]) (the rule's input)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"sampled_frames": T})()
        self.frames_seen: list[int] = []

    def forward(self, vit_tokens, num_options, **_):
        self.frames_seen.append(vit_tokens.shape[1])
        logits = torch.nn.functional.one_hot(vit_tokens[:, 0, 0, 0].round().long().clamp(0, 3), 5).float()
        return type("O", (), {"letter_logits": logits})()


def test_pseudo_labels_are_yes_exactly_where_the_answerer_reading_that_frame_alone_is_right(backbone):
    _, tok = backbone
    n = 5
    rng = np.random.default_rng(0)
    answers = rng.integers(0, 4, (n, T))  # what the answerer says from each frame alone
    features = np.zeros((n, T, 3, 2), np.float16)
    features[..., 0, 0] = answers
    qa = QASplit("train", items(n), np.arange(n), features=features)
    reader = FrameReader()
    labels = single_frame_correct(reader, Batcher(tok, qa), batch_size=8)
    expected = answers == np.array([it["answer"] for it in qa.items])[:, None]
    assert labels.shape == (n, T) and labels.dtype == bool
    assert np.array_equal(labels, expected)
    assert set(reader.frames_seen) == {1}  # every answer came from one frame
    quality = label_quality(qa.items, labels)
    key = np.zeros((n, T), bool)
    key[np.arange(n), np.arange(n) % T] = True
    assert quality == {"yes_rate_keyframes": float(expected[key].mean()),
                       "yes_rate_other_frames": float(expected[~key].mean())}


def sevila(base: ViLAModel, frames: int = 4) -> ViLAModel:
    return derive(base, frames=frames, sampled_frames=T, selector="localizer", distill=False, frame_prefix=True).eval()


def inputs(tok, n: int = 2) -> dict[str, torch.Tensor]:
    from vila.data.prompts import localizer_prompt

    qa = items(n)
    q = tok([it["question"] for it in qa], padding=True, return_tensors="pt")
    p = tok(["question : where option a : top left option b : top right"] * n, padding=True, return_tensors="pt")
    loc = tok([localizer_prompt(it) for it in qa], padding=True, return_tensors="pt")
    torch.manual_seed(0)
    return {"qformer_ids": q.input_ids, "qformer_mask": q.attention_mask, "input_ids": p.input_ids,
            "attention_mask": p.attention_mask, "num_options": torch.full((n,), 4), "localizer_ids": loc.input_ids,
            "localizer_mask": loc.attention_mask, "vit_tokens": torch.randn(n, T, 65, 64)}


def test_localizer_reads_exactly_one_frame_per_llm_pass(backbone):
    base, tok = backbone
    model = sevila(base)
    b = inputs(tok)
    seen = []
    lm_forward = model.language_model.forward

    def spy(*a, **k):
        seen.append(k["inputs_embeds"].shape)
        return lm_forward(*a, **k)

    model.language_model.forward = spy
    args = (b["qformer_ids"], b["qformer_mask"], b["localizer_ids"], b["localizer_mask"])
    with torch.no_grad():
        scores = frame_logits(model, b["vit_tokens"], *args)[..., model.config.yes_no_ids[0]]
        changed = b["vit_tokens"].clone()
        changed[:, 7] = torch.randn_like(changed[:, 7])  # frame 7 alone changes
        scores2 = frame_logits(model, changed, *args)[..., model.config.yes_no_ids[0]]
    q = model.config.backbone_config.num_query_tokens
    prefix = len(model.config.localizer_prefix_ids)
    assert seen[0] == (2 * T, prefix + q + b["localizer_ids"].shape[1], seen[0][2])  # one row = one frame's pass
    moved = (scores2 - scores).abs() > 1e-6
    assert moved[:, 7].all() and not moved[:, [t for t in range(T) if t != 7]].any()


@pytest.mark.parametrize("k", [4, 2])
def test_chosen_frames_are_the_top_k_by_score_in_time_order(backbone, k):
    base, tok = backbone
    model = sevila(base, k)
    b = inputs(tok)
    p = ForwardPass(b["qformer_ids"], b["qformer_mask"], b["input_ids"], b["attention_mask"],
                    vit_tokens=b["vit_tokens"], localizer_ids=b["localizer_ids"], localizer_mask=b["localizer_mask"])
    with torch.no_grad():
        for _, step in model.steps():
            step(p)
        out = model(**b)
    assert torch.equal(out.chosen, p.chosen) and p.chosen.shape == (2, k)
    for row, scores in zip(p.chosen, p.scores, strict=True):
        assert row.tolist() == sorted(row.tolist())
        assert set(row.tolist()) == set(scores.topk(k).indices.tolist())
        assert scores[row].min() >= scores[[t for t in range(T) if t not in row]].max()
    assert torch.equal(p.student_vit, b["vit_tokens"][torch.arange(2)[:, None], p.chosen])
    q = model.config.backbone_config.num_query_tokens
    assert p.visual.shape[1] == k * q  # the Answerer reads k frames


def test_answerer_reads_frame_i_after_its_mark(backbone):
    base, tok = backbone
    model = sevila(base, 4)
    q = model.config.backbone_config.num_query_tokens
    visual = torch.randn(1, 4 * q, model.config.backbone_config.text_config.d_model)
    framed = model.with_frame_prefixes(visual)
    marks = model.config.frame_prefix_ids
    assert tok.decode(marks[2]).replace(" ", "") == "frame3:"
    width = len(marks[0]) + q
    emb = model.language_model.get_input_embeddings()
    for i in range(4):
        block = framed[0, i * width:(i + 1) * width]
        assert torch.equal(block[: len(marks[i])], emb(torch.tensor(marks[i])))
        assert torch.equal(block[len(marks[i]):], visual[0, i * q:(i + 1) * q])


def test_localizer_loss_is_the_lm_loss_of_yes_or_no(backbone):
    base, tok = backbone
    model = sevila(base)
    b = inputs(tok)
    labels = torch.zeros(2, T, dtype=torch.long)
    labels[0, 3] = 1
    args = (b["vit_tokens"], b["qformer_ids"], b["qformer_mask"], b["localizer_ids"], b["localizer_mask"])
    with torch.no_grad():
        logits = frame_logits(model, *args)
        loss = pseudo_label_loss(model, *args, labels)
    yes, no = model.config.yes_no_ids
    target = torch.full((2, T), no)
    target[0, 3] = yes
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten()))


def test_cached_localizer_scores_give_the_answers_of_scoring_again(backbone, tmp_path, monkeypatch):
    """A SeViLA model that reads its Localizer's scores from the localize stage's cache answers exactly as when it
    runs the 32 LLM passes itself; evaluate takes the cache only when it holds this very Localizer's scores."""
    from vila.evaluation.evaluate import cached_localizer_scores
    from vila.io import stable_hash, write_json
    from vila.models.localizer import localizer_digest
    from vila.paths import Paths

    base, tok = backbone
    model = sevila(base, 4)
    b = inputs(tok)
    with torch.no_grad():
        own = model(**b)
        scores = frame_logits(model, b["vit_tokens"], b["qformer_ids"], b["qformer_mask"], b["localizer_ids"],
                                        b["localizer_mask"])[..., model.config.yes_no_ids[0]]
        cached = model(**{k: v for k, v in b.items() if not k.startswith("localizer_")}, localizer_scores=scores)
    assert torch.equal(own.letter_logits, cached.letter_logits) and torch.equal(own.chosen, cached.chosen)
    with pytest.raises(ValueError, match="only a SeViLA model"):
        base(**{**b, "vit_tokens": b["vit_tokens"][:, :1], "frame_index": torch.zeros(2, 1, dtype=torch.long)},
             localizer_scores=scores)
    monkeypatch.chdir(tmp_path)
    paths, qa = Paths("synthqa"), items(2)
    paths.localized.mkdir(parents=True)
    np.save(paths.localized / "test.npy", scores.numpy())
    meta = {"localizer_weights_sha256": localizer_digest(model), "test": {"qids_sha256": stable_hash([it["qid"] for it in qa])}}
    write_json(paths.localized / "meta.json", meta)
    assert np.array_equal(cached_localizer_scores(model, paths, "test", qa), scores.numpy())
    other = sevila(base, 4)
    with torch.no_grad():
        other.localizer.ln_vision.weight.add_(1.0)  # another Localizer: its own scores, never the cache
    assert cached_localizer_scores(other, paths, "test", qa) is None


def test_localizer_pretraining_labels_are_the_generators_moments():
    """SeViLA's step 1 learns, per frame, whether it shows what the moment query names: the labels it trains on
    (moment_labels of the unified items) are the generator's per-frame relevance, frame for frame."""
    from vila.data import synthqa
    from vila.training.sevila import moment_labels

    clips = synthqa.generate_moments(30, seed=4)
    items = [synthqa.moment_item(c, i) for i, c in enumerate(clips)]
    labels = moment_labels(items, synthqa.FRAMES)
    assert labels.shape == (30, synthqa.FRAMES)
    assert np.array_equal(labels, np.array([c.relevant for c in clips]))
    assert labels.any(1).all() and not labels.all(1).any()  # every query names some frames, never all
