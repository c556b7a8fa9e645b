"""The model pieces: Frame-Prompter, distiller, re_weight, LoRA, checkpoints, real-weight loading, FLOPs."""

import numpy as np
import pytest
import torch

from vila.models.build import derive, load_model, save_model
from vila.models.prompter import FramePrompter, teacher_frame_relevance
from vila.training.students import build_student_init, tau_at


def batch(tok, n=3, frames=32, questions=None):
    questions = questions or [f"where did the {c} object appear ?" for c in ("red", "blue", "green")][:n]
    q = tok(questions, padding=True, return_tensors="pt")
    p = tok([f"question : {x} option a : top left option b : top right" for x in questions], padding=True,
            return_tensors="pt")
    torch.manual_seed(0)
    return {"qformer_ids": q.input_ids, "qformer_mask": q.attention_mask, "input_ids": p.input_ids,
            "attention_mask": p.attention_mask, "num_options": torch.full((n,), 2),
            "vit_tokens": torch.randn(n, frames, 65, 64), "labels": torch.zeros(n, dtype=torch.long),
            "frame_index": torch.arange(frames).expand(n, -1)}


def student(base, **kw):
    return derive(base, frames=4, sampled_frames=32, selector=kw.pop("selector", "segment"), distill=True, **kw)


def test_hard_selection_passes_gradient_to_the_gate(backbone):
    model = student(backbone[0]).train()
    out = model(**batch(backbone[1]), tau=1.0, distill_weight=0.01)
    out.loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("prompter.gate")]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_segment_mode_picks_one_frame_per_segment_and_topk_distinct_frames():
    torch.manual_seed(0)
    scores = torch.randn(5, 32)
    seg = FramePrompter(8, 8, 8, 4, "segment", "visual")
    w, idx = seg.select_frames(scores, tau=0.5, noisy=True)
    assert torch.equal(idx // 8, torch.arange(4).expand(5, 4))
    assert torch.allclose(w.sum(-1), torch.ones(5, 4)) and set(w.detach().unique().tolist()) <= {0.0, 1.0}
    top = FramePrompter(8, 8, 8, 4, "topk", "visual")
    w, idx = top.select_frames(scores, tau=0.5, noisy=False)
    assert all(len(set(r.tolist())) == 4 for r in idx)
    assert torch.equal(idx, scores.topk(4).indices.sort().values)
    assert torch.allclose(w.detach(), torch.nn.functional.one_hot(idx, 32).float())


def test_evaluation_selection_is_deterministic_argmax():
    scores = torch.randn(2, 32)
    seg = FramePrompter(8, 8, 8, 4, "segment", "visual")
    a = seg.select_frames(scores, 0.01, noisy=False)[1]
    b = seg.select_frames(scores, 0.01, noisy=False)[1]
    assert torch.equal(a, b) and torch.equal(a, scores.view(2, 4, 8).argmax(-1) + torch.arange(4) * 8)


def test_temperature_schedule():
    assert tau_at(0, 1.0, 0.01, 100) == 1.0
    assert tau_at(50, 1.0, 0.01, 100) == pytest.approx(0.1)
    assert tau_at(100, 1.0, 0.01, 100) == pytest.approx(0.01)
    assert tau_at(500, 1.0, 0.01, 100) == pytest.approx(0.01)


def test_teacher_branch_gets_no_gradient(backbone):
    from vila.models.build import freeze_for_finetuning

    model = student(backbone[0]).train()
    freeze_for_finetuning(model)
    out = model(**batch(backbone[1]), tau=1.0, distill_weight=1.0)
    out.loss.backward()
    assert out.distill_loss is not None and out.distill_loss > 0
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith("teacher."))
    assert model.token_mapper.linear.weight.grad is not None


def test_distill_loss_is_zero_when_student_tokens_map_onto_the_teachers(backbone):
    """Student branch = teacher branch, frames constant within each segment, and a token-axis map that
    repeats each chosen frame's tokens over its segment: the distiller's MSE must then be 0."""
    model = student(backbone[0]).eval()
    b = batch(backbone[1])
    q = model.query_tokens.shape[1]
    with torch.no_grad():
        model.teacher.qformer.load_state_dict(model.qformer.state_dict())
        model.teacher.query_tokens.copy_(model.query_tokens)
        model.teacher.language_projection.load_state_dict(model.language_projection.state_dict())
        model.token_mapper.linear.weight.zero_()
        model.token_mapper.linear.bias.zero_()
        for t in range(32 * q):  # teacher token (frame f, query j) <- student token (segment f // 8, query j)
            model.token_mapper.linear.weight[t, (t // (8 * q)) * q + t % q] = 1.0
    model.token_mapper.norm = torch.nn.Identity()
    b["vit_tokens"] = b["vit_tokens"][:, ::8].repeat_interleave(8, dim=1)  # one image per segment
    with torch.no_grad():
        out = model(**b, distill_weight=1.0)
        assert out.distill_loss < 1e-10
        model.token_mapper.linear.weight.mul_(0.5)  # and the loss sees a wrong mapping
        assert model(**b, distill_weight=1.0).distill_loss > 1e-3


def test_teacher_frame_relevance_is_zero_for_a_frame_the_answer_cannot_see(backbone):
    """Gradient x input per frame: a frame whose teacher tokens are all zero contributes nothing; the others do."""
    model = student(backbone[0]).eval()
    b = batch(backbone[1])
    real = model.qformer_tokens  # zero the teacher's tokens of frame 5

    def tokens(vit, ids, mask, branch=None):
        out = real(vit, ids, mask, branch)
        if branch is model.teacher:
            q = model.teacher.query_tokens.shape[1]
            out = out.clone()
            out[:, 5 * q:6 * q] = 0.0
        return out

    model.qformer_tokens = tokens
    rel = teacher_frame_relevance(model, b["vit_tokens"], b["qformer_ids"], b["qformer_mask"], b["input_ids"],
                                        b["attention_mask"], b["labels"])
    assert rel.shape == (3, 32) and (rel >= 0).all()
    assert torch.all(rel[:, 5] == 0) and torch.all(rel[:, [0, 6, 31]] > 0)
    assert all(p.grad is None for p in model.parameters())  # a target, not a training signal for the teacher


def test_relevance_loss_pulls_each_segment_towards_the_relevant_frame(backbone):
    from vila.models.prompter import relevance_loss

    relevance = torch.zeros(2, 32)
    relevance[:, [3, 9, 18, 30]] = 1.0  # one relevant frame per segment
    scores = torch.zeros(2, 32, requires_grad=True)
    loss = relevance_loss(scores, relevance, 4, "segment")
    assert loss.item() == pytest.approx(np.log(8))  # uniform over 8 frames per segment
    loss.backward()
    assert torch.all(scores.grad[:, [3, 9, 18, 30]] < 0) and torch.all(scores.grad.sum(-1).abs() < 1e-6)
    confident = torch.full((2, 32), -20.0)
    confident[:, [3, 9, 18, 30]] = 20.0
    assert relevance_loss(confident, relevance, 4, "segment") < 1e-6
    model = student(backbone[0]).train()  # and the student's loss includes it only when asked to
    b = batch(backbone[1])
    b["frame_relevance"] = relevance[:1].expand(3, -1)
    assert model(**b, tau=1.0, relevance_weight=0.0).relevance_loss is None
    out = model(**b, tau=1.0, relevance_weight=1.0)
    assert out.relevance_loss > 0 and torch.allclose(out.loss, out.lm_loss + out.relevance_loss)


def test_text_gate_depends_on_the_question_and_visual_gate_does_not(backbone):
    base, tok = backbone
    b1 = batch(tok, questions=["where did the red object appear ?"] * 2, n=2)
    b2 = batch(tok, questions=["where did the blue object appear ?"] * 2, n=2)
    for gate, should_change in (("text", True), ("visual", False)):
        model = student(base, gate=gate).eval()
        with torch.no_grad():
            text1 = model.question_embedding(b1["qformer_ids"], b1["qformer_mask"]) if gate == "text" else None
            text2 = model.question_embedding(b2["qformer_ids"], b2["qformer_mask"]) if gate == "text" else None
            s1 = model.prompter.scores(b1["vit_tokens"], text1)
            s2 = model.prompter.scores(b1["vit_tokens"], text2)
        assert (not torch.allclose(s1, s2)) == should_change


def test_text_gate_is_the_per_patch_attention_computed_without_projecting_every_patch():
    # The gate's question-over-patches attention, written out with a key and a value projection of every patch,
    # equals the Prompter's (which projects the question and the pooled patch instead): float64, to rounding.
    import math

    torch.manual_seed(0)
    p = FramePrompter(64, 48, 32, 4, "segment", "text").double()
    tokens, text = torch.randn(3, 8, 17, 64, dtype=torch.double), torch.randn(3, 48, dtype=torch.double)
    q = p.text_proj(text)[:, None, None, :]
    keys = p.key_proj(tokens)
    attn = torch.softmax((keys * q).sum(-1) / math.sqrt(32), dim=-1)
    pooled = torch.einsum("btn,btnh->bth", attn, p.value_proj(tokens))
    expected = p.gate(torch.cat([p.frame_proj(tokens.mean(2)), pooled * q[:, :, 0]], -1)).squeeze(-1)
    assert torch.allclose(p.scores(tokens, text), expected, rtol=0, atol=1e-12)


def test_qformer_computes_the_shared_instruction_once_with_the_per_frame_outputs(backbone, monkeypatch):
    # vila/models/qformer.py: the instruction's rows once per question, the last layer's text rows skipped. The
    # query outputs are those of transformers' per-frame forward bit for bit (evaluation), the gradients the same
    # sums in another order; with dropout in training the per-frame forward runs (each frame draws its own mask).
    import vila.models.modeling as modeling
    from vila.models.qformer import shares_instruction

    model = student(backbone[0], selector=None).train()
    b = batch(backbone[1], questions=["where did the red object appear ?", "what colour is the object ?", "where ?"])
    assert b["qformer_mask"].sum(1).unique().numel() > 1  # padded questions of different lengths

    def queries_and_grads(per_frame: bool):
        if per_frame:
            monkeypatch.setattr(modeling, "shares_instruction", lambda q: False)
        model.zero_grad()
        out = model.qformer_queries(b["vit_tokens"][:, :6], b["qformer_ids"], b["qformer_mask"])
        (out ** 2).sum().backward()
        monkeypatch.undo()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    (fast, fast_grads), (ref, ref_grads) = queries_and_grads(False), queries_and_grads(True)
    assert fast.shape == (3, 6, 4, 64) and torch.equal(fast, ref)
    assert fast_grads and set(fast_grads) <= set(ref_grads)
    for name, grad in fast_grads.items():
        assert torch.allclose(grad, ref_grads[name], rtol=1e-4, atol=1e-6), name
    # what the shared path leaves out is only the last layer's text feed-forward, whose output nobody reads
    assert all(".layer.1.intermediate." in n or ".layer.1.output." in n for n in set(ref_grads) - set(fast_grads))
    assert all(ref_grads[n].abs().max() == 0 for n in set(ref_grads) - set(fast_grads))
    assert shares_instruction(model.qformer.eval()) and shares_instruction(model.qformer.train())
    model.qformer.config.hidden_dropout_prob = 0.1
    assert not shares_instruction(model.qformer.train()) and shares_instruction(model.qformer.eval())


@pytest.mark.parametrize("layers,every", [(4, 1), (4, 3), (12, 2), (1, 1)])
def test_shared_instruction_qformer_matches_the_per_frame_forward_at_any_depth(layers, every):
    # Middle layers, later cross-attentions and per-frame text rows (which the 2-layer tiny model never has):
    # query outputs equal transformers' per-frame forward, with padded and unpadded instructions.
    from transformers import InstructBlipQFormerConfig, InstructBlipQFormerModel

    from vila.models.qformer import frame_queries

    torch.manual_seed(0)
    cfg = InstructBlipQFormerConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                                    intermediate_size=64, encoder_hidden_size=24, cross_attention_frequency=every,
                                    vocab_size=50, max_position_embeddings=16, hidden_dropout_prob=0.0,
                                    attention_probs_dropout_prob=0.0)
    qformer = InstructBlipQFormerModel(cfg).eval()
    queries = torch.randn(1, 3, 32)
    b, f, t = 2, 5, 6
    ids = torch.randint(1, 50, (b, t))
    image = torch.randn(b * f, 7, 24)
    for mask in (torch.tensor([[1] * t, [1] * 3 + [0] * 3]), None):
        full_mask = None if mask is None else torch.cat([torch.ones(b * f, 3, dtype=mask.dtype),
                                                         mask.repeat_interleave(f, 0)], 1)
        with torch.no_grad():
            ref = qformer(input_ids=ids.repeat_interleave(f, 0), attention_mask=full_mask,
                          query_embeds=queries.expand(b * f, -1, -1), encoder_hidden_states=image).last_hidden_state[:, :3]
            got = frame_queries(qformer, queries, ids, mask, image)
        assert got.shape == ref.shape and torch.allclose(got, ref, rtol=0, atol=1e-5)


def test_reweight_copies_every_tensor_and_lists_what_starts_fresh(backbone):
    base, _ = backbone
    small = derive(base, frames=4, sampled_frames=32)
    teacher = derive(base, frames=32, sampled_frames=32)
    with torch.no_grad():  # make the two sources distinguishable
        for p in teacher.parameters():
            p.add_(1.0)
    s = {"select": 4, "selector": "segment", "gate": "text", "selector_input": "vit"}
    model, report = build_student_init(small, teacher, s, 32, seed=0)
    state = model.state_dict()
    for k, v in small.state_dict().items():
        assert torch.equal(state[k], v), k
    for k, v in teacher.state_dict().items():
        if k.startswith(("qformer.", "language_projection.")) or k == "query_tokens":
            assert torch.equal(state[f"teacher.{k}"], v), k
    assert report["fresh"] == ["prompter", "token_mapper"]
    bad = derive(base, frames=8, sampled_frames=32)
    with pytest.raises(ValueError, match="expected a 4-frame and a 32-frame model"):
        build_student_init(bad, teacher, s, 32, seed=0)


def test_checkpoints_are_safetensors_and_roundtrip(backbone, tmp_path):
    base, tok = backbone
    model = student(base).eval()
    save_model(model, tok, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists() and (tmp_path / "m" / "config.json").exists()
    assert not list((tmp_path / "m").glob("*.bin")) and not list((tmp_path / "m").glob("*.pt"))
    loaded, _ = load_model(tmp_path / "m")
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    b = batch(tok)
    b.pop("labels")
    with torch.no_grad():
        assert torch.equal(model(**b).letter_logits, loaded(**b).letter_logits)


def test_lora_checkpoints_load_merged_and_unmerged(backbone, tmp_path):
    base, tok = backbone
    model = derive(base, frames=4, sampled_frames=32)
    lora = {"r": 4, "alpha": 8, "dropout": 0.0}
    model.add_lora(lora)
    model.config.lora = lora
    with torch.no_grad():  # LoRA B starts at zero; give it weight so merging changes something
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.1)
    b = batch(tok)
    b.pop("labels")
    model.eval()
    with torch.no_grad():
        ref = model(**b).letter_logits
    save_model(model, tok, tmp_path / "unmerged")
    unmerged, _ = load_model(tmp_path / "unmerged")
    model.merge_lora()
    save_model(model, tok, tmp_path / "merged")
    merged, _ = load_model(tmp_path / "merged")
    assert merged.config.lora is None
    with torch.no_grad():
        assert torch.allclose(unmerged(**b).letter_logits, ref, atol=1e-5)
        assert torch.allclose(merged(**b).letter_logits, ref, atol=1e-4)


def test_real_instructblip_loading_path(tmp_path):
    """A tiny random InstructBLIP saved with save_pretrained loads through the real-weights path."""
    from transformers import InstructBlipForConditionalGeneration

    from vila.data.synthqa import vocabulary
    from vila.models.presets import backbone_config
    from vila.models.tokenizer import build_word_tokenizer, word_vocabulary
    from vila.training.backbone import load_instructblip

    vocab = word_vocabulary(vocabulary())
    src = InstructBlipForConditionalGeneration(backbone_config("tiny", len(vocab))).eval()
    src.save_pretrained(tmp_path / "ib")
    build_word_tokenizer(vocab).save_pretrained(tmp_path / "ib")
    qvocab = list(reversed(vocab[3:])) + vocab[:3]  # a different vocabulary, as BERT's differs from T5's
    build_word_tokenizer(qvocab).save_pretrained(tmp_path / "ib" / "qformer_tokenizer")
    model, tok = load_instructblip(str(tmp_path / "ib"), "tiny")
    assert tok.qformer_tokenizer("red").input_ids != tok("red").input_ids
    save_model(model, tok, tmp_path / "saved")
    _, reloaded = load_model(tmp_path / "saved")
    assert reloaded.qformer_tokenizer("red").input_ids == tok.qformer_tokenizer("red").input_ids
    for name in ("vision_model", "qformer", "language_projection", "language_model"):
        for k, v in getattr(src, name).state_dict().items():
            assert torch.equal(getattr(model, name).state_dict()[k], v), f"{name}.{k}"
    assert torch.equal(model.query_tokens, src.query_tokens)
    with pytest.raises(FileNotFoundError, match="instructblip-flan-t5-xl"):
        load_instructblip(str(tmp_path / "nowhere"), "flant5xl")


def test_flops_at_full_size_agree_with_the_design_counts():
    from vila.models.flops import flops_table
    from vila.models.modeling import ViLAConfig
    from vila.models.presets import backbone_config

    cfg = ViLAConfig(backbone=backbone_config("flant5xl").to_dict(), frames=4, sampled_frames=32,
                     answer_prefix_ids=[3], letter_ids=[1, 2, 3, 4, 5])
    specs = {"uniform_32f": {"frames": 32}, "vila_4f": {"frames": 4, "selector": "segment"},
             "vila_4f_fast": {"frames": 4, "selector": "segment", "selector_input": "patch_embed"}}
    table = flops_table({n: ViLAConfig(**{**cfg.to_dict(), **s}) for n, s in specs.items()}, 48, 16, device="meta")
    tf = {k: v["total"] / 1e12 for k, v in table.items()}
    assert tf["uniform_32f"] == pytest.approx(20.5, rel=0.10)  # design.md: about 20.5 TFLOPs
    assert tf["vila_4f"] == pytest.approx(17.3, rel=0.10)  # about 17.3 (1.19x)
    assert tf["uniform_32f"] / tf["vila_4f_fast"] >= 4.0
    assert table["uniform_32f"]["vit"] / 32 / 1e12 == pytest.approx(0.52, rel=0.10)


def test_answer_is_restricted_to_the_options_a_question_has(backbone):
    base, tok = backbone
    b = batch(tok)
    b.pop("labels")
    b["num_options"] = torch.tensor([2, 3, 4])
    with torch.no_grad():
        logits = base(**{**b, "vit_tokens": b["vit_tokens"][:, :1], "frame_index": b["frame_index"][:, :1]}).letter_logits
    for row, n in zip(logits, [2, 3, 4], strict=True):
        assert torch.isinf(row[n:]).all() and torch.isfinite(row[:n]).all()
    assert np.all(logits.argmax(-1).numpy() < np.array([2, 3, 4]))


def test_tokenizer_knows_every_word_of_the_benchmark_and_each_letter(backbone):
    from vila.data import synthqa
    from vila.data.prompts import llm_prompt
    from vila.models.tokenizer import answer_token_ids

    _, tok = backbone
    prefix, letters = answer_token_ids(tok)
    assert len(set(letters)) == 5 and tok.unk_token_id not in letters
    rng = np.random.default_rng(0)
    for qtype in synthqa.TYPES:
        item = synthqa.unified_item(synthqa.make_clip(qtype, 0, rng), "x", 0)
        assert tok.unk_token_id not in tok(llm_prompt(item)).input_ids


def test_full_size_latency_without_a_gpu_stops_cleanly(tmp_path):
    import subprocess
    import sys

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: this checks the no-GPU path")
    out = subprocess.run([sys.executable, "-m", "vila.cli", "speed-full", "--out", str(tmp_path / "s.json")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 3
    assert "no CUDA device" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "s.json").exists()


def test_speed_times_the_variants_in_turn_after_their_warmups():
    from vila.speed.latency import time_call, time_interleaved

    order: list[str] = []
    calls = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    times = time_interleaved(calls, warmup=2, repeats=3)
    assert order == ["a", "a", "b", "b", "c", "c"] + ["a", "b", "c"] * 3
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for v in times.values() for t in v)
    order.clear()
    assert len(time_call(calls["a"], warmup=1, repeats=4)) == 4 and order == ["a"] * 5


def frames_batch(tok, n=2, t=32, size=32):
    b = batch(tok, n=n, frames=t)
    del b["vit_tokens"], b["labels"]
    g = torch.Generator().manual_seed(1)
    b["frames"] = torch.randint(0, 256, (n, t, size, size, 3), dtype=torch.uint8, generator=g)
    return b


@pytest.mark.parametrize("design", ["uniform", "vit", "patch_embed"])
def test_speed_breakdown_and_flops_run_the_forward_pass_own_steps(backbone, design, monkeypatch):
    """The breakdown re-runs each step of one traced forward pass: together they give forward's answer, and
    a change to a step (here: the LLM step replaced) reaches the breakdown and the FLOP count with no other edit."""
    from vila.models.flops import step_flops
    from vila.models.modeling import ForwardPass, trace_steps
    from vila.speed.latency import end_to_end, end_to_end_frames, step_calls

    base, tok = backbone
    model = (derive(base, frames=4, sampled_frames=32, selector=None, distill=False) if design == "uniform" else
             student(base, selector_input=design)).eval()
    b = frames_batch(tok)
    expected_order = ["select", "vit", "qformer", "llm"] if design == "patch_embed" else ["vit", "select", "qformer", "llm"]
    assert [name for name, _ in model.steps()] == expected_order
    calls = step_calls(model, b, 32)
    assert list(calls) == expected_order
    frames, index = end_to_end_frames(model, b["frames"], 32)
    assert frames.shape[1] == index.shape[1] == (4 if design == "uniform" else 32)
    p = ForwardPass(b["qformer_ids"], b["qformer_mask"], b["input_ids"], b["attention_mask"], frames=frames,
                    frame_index=index)
    with torch.inference_mode():
        trace_steps(model, p)
        inputs = {k: v for k, v in b.items() if k not in ("frames", "frame_index")}
        letter_logits = model(frames=frames, frame_index=index, **inputs).letter_logits
    letters = torch.tensor(model.config.letter_ids)
    assert torch.equal(p.vocab_logits[:, letters[:2]], letter_logits[:, :2])
    assert torch.equal(letter_logits.argmax(-1), end_to_end(model, b, 32)())
    flops = step_flops(model, 20, 8)
    vit_frame = step_flops(derive(base, frames=1, sampled_frames=1, selector=None, distill=False), 20, 8)["vit"]
    assert flops["vit"] == (32 if design == "vit" else 4) * vit_frame  # the fast design encodes only the chosen 4
    assert (flops["select"] == 0) == (design == "uniform")

    seen = []
    monkeypatch.setattr(model, "step_llm", lambda p: seen.append(p.visual.shape))
    step_calls(model, b, 32)["llm"]()
    assert seen and seen[-1][1] == 4 * model.config.backbone_config.num_query_tokens
    assert step_flops(model, 20, 8)["llm"] == 0


def test_derive_names_a_tensor_whose_shape_the_change_does_not_explain(backbone):
    from vila.models.build import derive

    model, _ = backbone
    student = derive(model, frames=4, sampled_frames=32, selector="segment", distill=True)
    student.query_tokens.data = student.query_tokens.data[:, :-1]  # a shape no config change explains
    with pytest.raises(ValueError, match=r"derive: query_tokens has shape .* which the change \['frames'\]"):
        derive(student, frames=2)
