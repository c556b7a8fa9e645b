"""The whole DAG on the smoke profile (tiny data, one step per training stage), through Snakemake and
through DVC: output contracts, no-op reruns, determinism, fine-grained invalidation."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

from tests.conftest import DVC_TARGETS, ROOT, run, smoke_params, wait_for
from vila.models.registry import model_names

pytestmark = pytest.mark.slow
SCHEMAS = ROOT / "workflow" / "schemas"
VARIANTS = model_names(smoke_params())


@pytest.fixture(scope="module")
def dvc_project(dvc_cold):
    project, out = wait_for(dvc_cold)
    assert "Running stage 'localizer'" in out and "Running stage 'reweight'" in out
    return project


def stale_stages(project: Path) -> dict[str, list]:
    """`dvc status --json`: stage -> what changed (params, deps, missing outputs)."""
    return json.loads(run(["dvc", "status", "--json"], project).stdout)


def test_every_output_contract(smoke_dag: Path):
    eval_schema = json.loads((SCHEMAS / "eval.schema.json").read_text())
    for variant in VARIANTS:
        result = json.loads((smoke_dag / f"results/synthqa/eval/{variant}.json").read_text())
        jsonschema.validate(result, eval_schema)
        assert result["variant"] == variant and result["n"] == 8
        assert set(result["accuracy"]) >= {"overall", "mean", "Interaction", "Sequence", "Prediction", "Feasibility"}
    speed = json.loads((smoke_dag / "results/synthqa/speed.json").read_text())
    jsonschema.validate(speed, json.loads((SCHEMAS / "speed.schema.json").read_text()))
    assert set(speed["speedup"]) == {f"{v}_vs_{ref}" for ref in ("uniform_32f", "sevila_4f") for v in VARIANTS if v != ref}
    assert set(speed["flops"]) == {"tiny", "flant5xl"} and set(speed["flops"]["flant5xl"]) == set(VARIANTS)
    for name in ("vila_4f", "sevila_4f"):
        assert set(speed["breakdown_ms"][name]) == {"vit", "select", "qformer", "llm"}
    xl = speed["flops_breakdown"]["flant5xl"]  # SeViLA's selection runs the LLM once per frame: the costliest
    assert xl["sevila_4f"]["select"] > 10 * xl["vila_4f"]["select"] and xl["sevila_4f"]["total"] > xl["vila_4f"]["total"]
    for k in (2, 4):  # SeViLA's models: the Answerer reads k frames, chosen by the Localizer among 32
        result = json.loads((smoke_dag / f"results/synthqa/eval/sevila_{k}f.json").read_text())
        assert result["frames"] == k and result["sampled_frames"] == 32
        assert {len(c) for c in result["selection"]["chosen"].values()} == {k}
        assert all(c == sorted(set(c)) for c in result["selection"]["chosen"].values())
    # SeViLA's pseudo-labeller is the zero-shot Answerer: the backbone itself, not a model fine-tuned on the QA task
    labels = json.loads((smoke_dag / "work/synthqa/pseudo_labels_zero_shot/meta.json").read_text())
    assert labels["labeller"] == "zero_shot" and labels["answerer"] == "models/synthqa/backbone"
    assert labels["questions"] == 12 and labels["frames"] == 32 and "against_keyframes" in labels
    ablation = json.loads((smoke_dag / "work/synthqa/pseudo_labels_uniform_answerer/meta.json").read_text())
    assert ablation["answerer"] == "models/synthqa/sevila_answerer_uniform_4f"
    pretrained = json.loads((smoke_dag / "models/synthqa/sevila_localizer_pretrained/metrics.json").read_text())
    assert pretrained["chance"] == 0.5 and pretrained["val_curve"]
    stats = json.loads((smoke_dag / "work/synthqa/dataset/stats.json").read_text())
    assert stats["questions"] == 28 and stats["generator_version"] == 2 and stats["test_seed"] == 917
    assert set(stats["question_blind_selection"]["test"]) >= {"uniform", "random", "object_pixels", "frame_difference"}
    comparisons = json.loads((smoke_dag / "results/synthqa/comparisons.json").read_text())
    jsonschema.validate(comparisons, json.loads((SCHEMAS / "comparisons.schema.json").read_text()))
    assert {c["a"] for c in comparisons["claims"]} == {"vila_4f", "vila_2f", "sevila_4f", "vila_4f_relevance"}
    assert comparisons["resamples"] >= 10_000
    paper = [c for c in comparisons["claims"] if c["group"] == "paper"]
    assert len(paper) == 4 and all({"p_holm", "magnitude", "speed"} <= set(c) for c in paper)
    for variant in VARIANTS:  # every question scored has its prediction, for the paired statistics
        result = json.loads((smoke_dag / f"results/synthqa/eval/{variant}.json").read_text())
        assert len(result["predictions"]) == result["n"] and result["seed"] == 0


def test_reports_are_offline_and_complete(smoke_dag: Path):
    for name in ("table1", "table2", "speed", "training", "selection", "benchmark"):
        page = (smoke_dag / f"reports/{name}.html").read_text()
        text = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", page)  # base64 can spell "NaN"
        assert "NaN" not in text and "nan%" not in text
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), f"{name}.html loads something from the network"
        assert "Provenance" in page and "params hash" in page
    table1 = (smoke_dag / "reports/table1.html").read_text()
    assert "synthqa" in table1.split("</h1>")[0]
    assert "67.1" in table1  # the paper's STAR average beside the measured rows
    vila = json.loads((smoke_dag / "results/synthqa/eval/vila_4f.json").read_text())
    assert f"{100 * vila['accuracy']['mean']:.1f}" in table1
    assert "data:image/png;base64," in table1


def test_selection_study_one_answerer_reads_each_selectors_frames(smoke_dag: Path):
    params = smoke_params()
    eval_schema = json.loads((SCHEMAS / "eval.schema.json").read_text())
    dataset = {it["qid"]: it for it in json.loads((smoke_dag / "work/synthqa/dataset/annotations/test.json").read_text())}
    for selector in params["selection"]["selectors"]:
        result = json.loads((smoke_dag / f"results/synthqa/selection/{selector}_4f.json").read_text())
        jsonschema.validate(result, eval_schema)
        assert (result["variant"], result["frames"], result["answerer"]) == (f"select_{selector}_4f", 4, "reader_4f")
        assert len(result["predictions"]) == result["n"] == 8
        chosen = result["selection"]["chosen"]
        assert {len(c) for c in chosen.values()} == {4} and all(c == sorted(set(c)) for c in chosen.values())
        if selector == "uniform":
            assert set(map(tuple, chosen.values())) == {(4, 12, 20, 28)}
        if selector == "oracle":  # the key frames are read (all of them where they fit in 4)
            assert all(set(dataset[q]["keyframes"]) <= set(c) for q, c in chosen.items() if len(dataset[q]["keyframes"]) <= 4)
        if selector in ("bolt_its", "aks"):
            assert result["tuning"]["candidates"] and result["hyperparameters"]
    # one shared answerer, the reader trained on the mix of frame sets, outside models/<dataset>/ (Table 1's)
    for selector in params["selection"]["selectors"]:
        result = json.loads((smoke_dag / f"results/synthqa/selection/{selector}_4f.json").read_text())
        assert result["checkpoint"] == "models/selection/synthqa/reader_4f"
    reader = json.loads((smoke_dag / "models/selection/synthqa/reader_4f/metrics.json").read_text())
    assert reader["val_curve"] and reader["convergence_rule"] == params["train"]["convergence"]
    for source in params["selection"]["scorers"]:
        meta = json.loads((smoke_dag / f"results/synthqa/scores/{source}.json").read_text())
        assert 0 <= meta["key_frame_auc"]["val"] <= 1
        if source != "backbone":  # the cached scores, read by the model's rule, give the frames the model chose
            assert meta["reproduces_model_choice"] == {"val": 1.0, "test": 1.0}, source
    # a trained selector's frames in the study are those its own model read in Table 1 (up to frames of equal score:
    # a clip's empty frames are identical, and torch's top-k may take either of two)
    sevila = json.loads((smoke_dag / "results/synthqa/eval/sevila_4f.json").read_text())["selection"]["chosen"]
    study = json.loads((smoke_dag / "results/synthqa/selection/sevila_localizer_4f.json").read_text())["selection"]
    with np.load(smoke_dag / "work/synthqa/scores/sevila_4f.npz") as z:
        scores = dict(zip(z["test_qids"].tolist(), z["test"], strict=True))
    shared = [q for q in sevila if q in study["chosen"]]
    assert shared and all(sorted(scores[q][study["chosen"][q]]) == sorted(scores[q][sevila[q]]) for q in shared)
    page = (smoke_dag / "reports/selection.html").read_text()
    assert "One answerer, every selector" in page and "data:image/png;base64," in page


def test_noop_rerun_does_nothing(smoke_dag: Path):
    out = run(["snakemake", "-n", "--cores", "1", "all"], smoke_dag).stdout
    assert "Nothing to be done" in out


def test_dvc_status_is_clean_after_repro(dvc_project: Path):
    out = run(["dvc", "status", *DVC_TARGETS], dvc_project).stdout
    assert "Data and pipelines are up to date" in out, out


def test_same_seed_same_metrics_bit_for_bit(smoke_dag: Path, dvc_project: Path):
    """Two cold runs (one through Snakemake, two jobs at a time; one through DVC, one stage at a time) write
    byte-identical eval JSONs."""
    for variant in ("uniform_32f", "vila_4f", "sevila_4f"):
        a = (smoke_dag / f"results/synthqa/eval/{variant}.json").read_bytes()
        b = (dvc_project / f"results/synthqa/eval/{variant}.json").read_bytes()
        assert a == b, variant


def test_changing_student_lr_reruns_only_students_and_downstream(dvc_project: Path):
    """train.student.lr makes the student stale and nothing else that ran; reproducing the variant's evaluation then
    runs exactly its student and its evaluation."""
    params = yaml.safe_load((dvc_project / "params.yaml").read_text())
    params["train"]["student"]["lr"] = 0.002
    (dvc_project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # Of the stages this project ran, only the student (test_pipeline checks every student reads the key).
    params_changed = {stage for stage, changes in stale_stages(dvc_project).items()  # never-run stages say "new"
                      if any("train.student.lr" in c.get("changed deps", {}).get("params.yaml", {}) for c in changes)}
    assert params_changed == {"student@vila_4f"}
    out = run(["dvc", "repro", "evaluate_student@vila_4f"], dvc_project).stdout
    assert sorted(set(re.findall(r"Running stage '([^']+)'", out))) == ["evaluate_student@vila_4f", "student@vila_4f"]
    assert "Data and pipelines are up to date" in run(["dvc", "status", *DVC_TARGETS], dvc_project).stdout


def test_second_epoch_decodes_no_video_and_runs_no_vit(smoke_dag: Path, tmp_path, monkeypatch):
    from transformers import InstructBlipVisionModel

    import vila.data.video as video
    from vila.config import load_params
    from vila.training.fit import run_teacher

    calls = {"decode": 0, "vit": 0}
    real_read, real_vit = video.decode_grid, InstructBlipVisionModel.forward

    def counting_read(*a, **k):
        calls["decode"] += 1
        return real_read(*a, **k)

    def counting_vit(self, *a, **k):
        calls["vit"] += 1
        return real_vit(self, *a, **k)

    monkeypatch.setattr(video, "decode_grid", counting_read)
    monkeypatch.setattr(InstructBlipVisionModel, "forward", counting_vit)
    project = tmp_path / "copy"
    shutil.copytree(smoke_dag, project)
    monkeypatch.chdir(project)
    params = load_params("params.yaml")
    params["train"]["convergence"].update(max_epochs=2, patience=5)
    params["train"]["teacher"].update(max_steps=0)
    run_teacher(params, 4)
    metrics = json.loads((project / "models/synthqa/uniform_4f/metrics.json").read_text())
    assert metrics["epochs_run"] == 2
    assert calls == {"decode": 0, "vit": 0}


def test_torchrun_two_processes_match_one_process(smoke_dag: Path, tmp_path):
    """torchrun --nproc_per_node 2 (CPU, gloo) trains a teacher to the same weights as one process at
    the same global batch, up to float summation order. Tolerance 1e-4 (a wrong shard or a lost gradient
    moves weights by ~lr = 1e-3 per step): Adam divides each gradient by its own running scale, so where a
    gradient is near zero its rounding noise becomes an update of up to ~lr. Attention key biases have a zero
    gradient in exact arithmetic (softmax is shift-invariant): 2.2e-5 after 6 steps (1.2e-4 with the shared-
    instruction Q-Former: held to lr per step, below); since the benchmark's clips
    changed (session 4) Q-Former weights also move up to 2.6e-5 (layer 0 query, output_query), with the shared-
    instruction Q-Former up to 5.4e-5; the rest ~1e-7. A parameter no rank has a gradient for stays untouched in
    both (the last layer's text feed-forward: decayed under a zero gradient it moved 1.5e-4)."""
    from safetensors.torch import load_file

    results = {}
    for name, launcher in (("single", ["vila"]),
                           ("ddp", ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "vila.cli"])):
        project = tmp_path / name
        shutil.copytree(smoke_dag, project)
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["train"]["convergence"].update(max_epochs=2, patience=5)
        params["train"]["teacher"].update(max_steps=0)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run([*launcher, "train", "teacher", "--frames", "4"], project)
        model_dir = project / "models/synthqa/uniform_4f"
        results[name] = (load_file(model_dir / "model.safetensors"),
                         json.loads((model_dir / "metrics.json").read_text()))
    (single, m1), (ddp, m2) = results["single"], results["ddp"]
    assert m1["world_size"] == 1 and m2["world_size"] == 2 and m1["steps"] == m2["steps"]
    diffs = {k: float((single[k] - ddp[k]).abs().max()) for k in single}
    # Attention key biases have no gradient in exact arithmetic: what moves them is rounding noise that Adam scales
    # up to ~lr a step (1.2e-4 with the shared-instruction Q-Former), so they are held to that, the rest to 1e-4.
    key_bias = {k: d for k, d in diffs.items() if k.endswith("attention.key.bias")}
    rest = {k: d for k, d in diffs.items() if k not in key_bias}
    assert key_bias and max(key_bias.values()) < 1e-3 * m1["steps"], key_bias
    assert max(rest.values()) < 1e-4, sorted(rest.items(), key=lambda kv: -kv[1])[:5]
    assert m1["best_val_accuracy"] == m2["best_val_accuracy"]


def test_augmented_training_runs_the_frozen_vit_on_cropped_frames(smoke_dag: Path, tmp_path, monkeypatch):
    from transformers import InstructBlipVisionModel

    from vila.config import load_params
    from vila.training.fit import run_teacher
    from vila.training.students import run_student

    calls = {"vit": 0}
    real_vit = InstructBlipVisionModel.forward

    def counting_vit(self, *a, **k):
        calls["vit"] += 1
        return real_vit(self, *a, **k)

    monkeypatch.setattr(InstructBlipVisionModel, "forward", counting_vit)
    project = tmp_path / "copy"
    shutil.copytree(smoke_dag, project)
    monkeypatch.chdir(project)
    params = load_params("params.yaml")
    params["data"]["augment"] = "random_resized_crop"
    run_teacher(params, 4)
    assert calls["vit"] >= 1
    before = calls["vit"]
    run_student(params, "vila_4f")
    assert calls["vit"] > before
    assert json.loads((project / "models/synthqa/vila_4f/metrics.json").read_text())["steps"] == 1


def test_a_variant_that_overrides_select_reads_that_many_frames(smoke_dag: Path, tmp_path, monkeypatch, caplog):
    """`vila_2f: {select: 2}` trains a 2-frame student (the distiller's token-axis layer reshaped, and logged;
    the rest from vila_init), and its eval JSON says, and its chosen frames show, 2 frames."""
    from vila.config import load_params
    from vila.evaluation import evaluate as evaluation
    from vila.models.build import load_model
    from vila.training.students import run_student

    project = tmp_path / "copy"
    shutil.copytree(smoke_dag, project)
    monkeypatch.chdir(project)
    params = load_params("params.yaml")
    assert params["variants"]["vila_2f"] == {"select": 2}  # the paper's VLEP claim's variant
    with caplog.at_level("INFO", logger="vila.models.build"):
        run_student(params, "vila_2f")
    assert re.search(r"start fresh \(token_mapper\); reshaped by \['frames'\]: token_mapper\.linear\.weight$",
                     caplog.text, re.M)
    model, _ = load_model(project / "models/synthqa/vila_2f")
    assert model.config.frames == 2 and model.prompter.select == 2
    evaluation.run(params, "vila_2f")
    result = json.loads((project / "results/synthqa/eval/vila_2f.json").read_text())
    assert result["frames"] == 2
    assert {len(c) for c in result["selection"]["chosen"].values()} == {2}
    jsonschema.validate(result, json.loads((SCHEMAS / "eval.schema.json").read_text()))


@pytest.mark.parametrize("k", [4, 2])
def test_sevila_answerer_trains_on_the_localizers_top_k_frames_in_time_order(smoke_dag: Path, tmp_path, monkeypatch, k):
    """SeViLA's Answerer fine-tuning: every training batch holds exactly the frozen Localizer's k highest-scoring
    frames of each question (work/<dataset>/localized), in time order, after `Frame {i}: ` marks; its val questions
    are read likewise."""
    from vila.config import load_params
    from vila.data.dataset import load_split
    from vila.paths import Paths
    from vila.training import fit, sevila

    project = tmp_path / "copy"
    shutil.copytree(smoke_dag, project)
    monkeypatch.chdir(project)
    params = load_params("params.yaml")
    seen = {}

    def capture(model, tokenizer, params, section, name, load_and_loss, groups, train_b, val_b, val_read=None,
                out_dir=None, eval_fn=None, chance=None):
        seen.update(model=model, name=name, load=load_and_loss[0], train_b=train_b, val_read=val_read)

    monkeypatch.setattr(fit, "fit_and_save", capture)
    sevila.run_answerer(params, k)
    assert seen["name"] == f"sevila_answerer_{k}f" and seen["model"].config.frame_prefix
    scores = {s: np.load(f"work/synthqa/localized/{s}.npy") for s in ("train", "val")}
    features = np.load("work/synthqa/features/train.npy", mmap_mode="r")
    qa = load_split(Paths.from_params(params), "train")
    n = len(qa)
    batch = seen["load"](np.arange(n), np.random.default_rng(0), slice(None))
    read = batch["vit_tokens"].numpy()
    for i in range(n):
        # which grid frame each read frame is (by its cached features), taken in time order ...
        clip = features[qa.rows[i]].astype(np.float32)
        read_at: list[int] = []
        for tokens in read[i]:
            read_at.append(next(t for t in range(32) if np.array_equal(clip[t], tokens) and (not read_at or t > read_at[-1])))
        # ... are k frames none of which scores below a frame left out: the top k by the Localizer's score
        s = scores["train"][i]
        assert len(read_at) == k and s[read_at].min() >= np.delete(s, read_at).max(), i
    val = seen["val_read"]
    assert val.shape == (len(scores["val"]), k) and (np.diff(val, axis=1) > 0).all()
    assert all(scores["val"][i][val[i]].min() >= np.delete(scores["val"][i], val[i]).max() for i in range(len(val)))


def test_report_reads_the_params_file_it_is_given_and_says_na_for_a_missing_variant(smoke_dag: Path, tmp_path):
    """`vila --params FILE report` renders from FILE (params.yaml gone); a variant without its eval JSON shows n/a."""
    project = tmp_path / "copy"
    shutil.copytree(smoke_dag, project)
    (project / "params.yaml").rename(project / "other.yaml")
    (project / "results/synthqa/eval/vila_4f_fast.json").unlink()
    run(["vila", "--params", "other.yaml", "report"], project)
    table1 = (project / "reports/table1.html").read_text()
    assert "Provenance" in table1
    row = table1[table1.index("<th>vila_4f_fast</th>"):].split("</tr>")[0]
    assert row.count("n/a") >= 6


def test_dvc_metrics_are_a_table_of_one_row_per_model(smoke_dag: Path, tmp_path):
    """`dvc metrics show` reads results/<dataset>/metrics/<model>.json: one row per model, the same four columns
    (accuracy, mean of types, key-frame recall, speed-up against sevila_4f); the detailed JSONs are plain outputs."""
    from vila.evaluation.summary import METRIC_KEYS

    project = tmp_path / "copy"
    shutil.copytree(smoke_dag, project)
    run(["dvc", "init", "-q", "--no-scm"], project)
    out = run(["dvc", "metrics", "show"], project).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["Path", *METRIC_KEYS], out
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(f"results/synthqa/metrics/{v}.json" for v in VARIANTS)
    speed = json.loads((project / "results/synthqa/speed.json").read_text())
    for v in VARIANTS:
        row = json.loads((project / f"results/synthqa/metrics/{v}.json").read_text())
        ev = json.loads((project / f"results/synthqa/eval/{v}.json").read_text())
        assert list(row) == list(METRIC_KEYS)
        assert (row["accuracy"], row["accuracy_mean"]) == (ev["accuracy"]["overall"], ev["accuracy"]["mean"])
        assert row["keyframe_recall"] == ev["selection"]["keyframe_recall"]
        expected = 1.0 if v == "sevila_4f" else round(speed["speedup"][f"{v}_vs_sevila_4f"], 3)
        assert row["speedup_vs_sevila_4f"] == expected


def test_the_readme_results_block_is_generated_from_the_results(smoke_dag: Path, tmp_path, monkeypatch):
    """`vila readme` rewrites only the block between the README's markers, from the eval JSONs and the claims."""
    from vila.config import load_params
    from vila.reports.readme import BEGIN, END, write_readme

    project = tmp_path / "copy"
    shutil.copytree(smoke_dag, project)
    monkeypatch.chdir(project)
    readme = project / "README.md"
    readme.write_text(f"# intro\n{BEGIN}\nstale figures\n{END}\n## outro\n")
    write_readme(load_params("params.yaml"), readme)
    text = readme.read_text()
    assert text.startswith("# intro\n") and text.endswith(f"{END}\n## outro\n") and "stale figures" not in text
    block = text.split(BEGIN)[1].split(END)[0]
    vila = json.loads((project / "results/synthqa/eval/vila_4f.json").read_text())
    row = next(line for line in block.splitlines() if line.startswith("| vila_4f |"))
    assert f"| {100 * vila['accuracy']['mean']:.1f} |" in row
    claims = json.loads((project / "results/synthqa/comparisons.json").read_text())["claims"]
    assert all(c["claim"] in block for c in claims)
    assert "seeds" in block  # the smoke DAG ran the seed study: its pooled verdicts are in the block


def test_snakemake_report_holds_the_key_outputs_with_captions(smoke_dag: Path, tmp_path):
    """`make report`: Snakemake's self-contained report of the run, with Table 1, the claims and the training
    curves under their captions (workflow/report/)."""
    project = tmp_path / "copy"
    shutil.copytree(smoke_dag, project)
    run(["snakemake", "--report", "reports/snakemake.html", "reproduce_table1"], project)
    page = (project / "reports/snakemake.html").read_text()
    assert len(page) > 50_000
    for caption, phrase in (("table1.rst", "accuracy by question type"), ("claims.rst", "each paired difference with"),
                            ("training.rst", "validation curve under the one convergence rule")):
        assert phrase in (ROOT / "workflow/report" / caption).read_text() and phrase in page, caption


def test_a_dvc_experiment_shows_each_models_headline(smoke_dag: Path, tmp_path):
    """The DVC experiment loop on a committed run: `dvc exp run -S compare.seed=1` reruns what the key reaches, and
    `dvc exp show` prints the experiment's headline per model, read from the per-model metrics files that git keeps
    (.gitignore lets results/<dataset>/metrics/ through); `dvc metrics diff` against HEAD reads them too."""
    project = tmp_path / "copy"
    shutil.copytree(smoke_dag, project)
    shutil.copy(ROOT / ".gitignore", project / ".gitignore")
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "ci@example.com"],
                ["git", "config", "user.name", "ci"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                ["dvc", "add", "-q", "data"], ["dvc", "commit", "--force", "-q", "dvc.yaml"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "a finished run"]):
        run(cmd, project)
    tracked = run(["git", "ls-files", "results"], project).stdout.split()
    assert sorted(tracked) == sorted(f"results/synthqa/metrics/{v}.json" for v in VARIANTS)
    out = run(["dvc", "exp", "run", "-S", "compare.seed=1"], project).stdout
    assert "Running stage 'compare'" in out and "Running stage 'student" not in out
    table = run(["dvc", "exp", "show", "--csv", "--drop", r"^(?!Experiment$|.*:accuracy_mean$).*"], project).stdout
    header, *rows = [line.split(",") for line in table.strip().splitlines()]
    column = {c.split(":")[0]: i for i, c in enumerate(header)}
    assert set(column) >= {f"results/synthqa/metrics/{v}.json" for v in VARIANTS}
    experiment = next(r for r in rows if r[0] and r[0] not in ("workspace", "master", "main"))
    vila = json.loads((project / "results/synthqa/eval/vila_4f.json").read_text())["accuracy"]["mean"]
    assert float(experiment[column["results/synthqa/metrics/vila_4f.json"]]) == pytest.approx(vila)
    diff = run(["dvc", "metrics", "diff"], project)
    assert "failed to load" not in diff.stdout + diff.stderr


def test_a_snakemake_override_reaches_the_jobs_it_changes_and_nothing_else(smoke_dag: Path, tmp_path):
    """`snakemake ... --configfile F`: the jobs run with F's settings (VILA_PARAMS points them at the merged
    configuration), only the jobs whose params F changes rerun, and an error in F is reported as F's."""
    project = tmp_path / "copy"
    shutil.copytree(smoke_dag, project)
    (project / "ov.yaml").write_text("compare:\n  resamples: 20000\n  seed: 7\n")
    target = ["results/synthqa/comparisons.json", "--configfile", "ov.yaml"]
    plan = run(["snakemake", "-n", "--cores", "1", *target], project).stdout
    assert set(re.findall(r"^(?:local)?rule (\w+):", plan, re.M)) == {"compare"}
    run(["snakemake", "--cores", "1", *target], project)
    comparisons = json.loads((project / "results/synthqa/comparisons.json").read_text())
    assert (comparisons["resamples"], comparisons["bootstrap_seed"]) == (20000, 7)
    assert "Nothing to be done" in run(["snakemake", "-n", "--cores", "1", *target], project).stdout
    (project / "bad.yaml").write_text("compare:\n  resamples: 5\n")
    bad = run(["snakemake", "-n", "--cores", "1", "results/synthqa/comparisons.json", "--configfile", "bad.yaml"],
              project, check=False)
    assert bad.returncode != 0 and re.search(r"overridden by \S*bad\.yaml: compare\.resamples", bad.stdout + bad.stderr)
