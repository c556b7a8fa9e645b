import copy
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_project, repo_params, run
from vila.config import ParamsError, load_params, validate


def test_repo_params_are_valid():
    load_params("params.yaml")


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda p: p.update(bogus_param_xyz=3), "bogus_param_xyz"),
        (lambda p: p["train"]["student"].update(lrr=1), "train.student.lrr"),
        (lambda p: p["variants"]["vila_4f"].update(foo=1), "variants.vila_4f.foo"),
        (lambda p: p["train"]["teacher"].update(lr="fast"), "train.teacher.lr"),
        (lambda p: p["train"]["convergence"].update(max_epochs=0), "train.convergence.max_epochs"),
        (lambda p: p["data"].update(on_bad_video="ignore"), "data.on_bad_video"),
        (lambda p: p["train"]["student"].update(select=5), "cannot be split into 5 equal segments"),
        (lambda p: p["train"]["student"].update(select=64), "exceed data.frames"),
        (lambda p: p["train"]["teacher"].update(frames=[4, 6, 32]), "does not divide data.frames"),
        (lambda p: p["train"]["student"]["tau"].update(end=2.0), "train.student.tau.end"),
        (lambda p: p["threads"].update(train=0), "threads.train"),
    ],
)
def test_bad_params_are_rejected_with_the_key(mutate, expected):
    params = copy.deepcopy(repo_params())
    mutate(params)
    with pytest.raises(ParamsError) as err:
        validate(params)
    assert expected in str(err.value)
    assert "Traceback" not in str(err.value)


def test_unknown_key_fails_snakemake_and_dvc_before_any_stage(tmp_path):
    params = repo_params()
    params["bogus_param_xyz"] = 3
    project = make_project(tmp_path / "p", params, dvc=True)
    sm = run(["snakemake", "-n", "--cores", "1", "reproduce_table1"], project, check=False)
    assert sm.returncode != 0
    assert "bogus_param_xyz" in sm.stdout + sm.stderr
    dvc = run(["dvc", "repro"], project, check=False)
    assert dvc.returncode != 0
    assert "bogus_param_xyz" in dvc.stdout + dvc.stderr
    assert not (project / "work").exists(), "a stage produced output despite invalid params"


def test_wrong_type_fails_snakemake(tmp_path):
    params = repo_params()
    params["train"]["student"]["lr"] = "fast"
    project = make_project(tmp_path / "p", params)
    sm = run(["snakemake", "-n", "--cores", "1", "reproduce_table1"], project, check=False)
    assert sm.returncode != 0 and "train.student.lr" in sm.stdout + sm.stderr


def test_cli_help_imports_no_heavy_library():
    """`vila --help` must stay fast: torch, transformers and peft are imported inside commands only."""
    code = ("import sys, vila.cli; vila.cli.build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = run([sys.executable, "-c", code], cwd=Path("."))
    assert out.stdout.strip() == "[]"


def test_params_file_roundtrip(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(repo_params()))
    assert load_params(tmp_path / "p.yaml")["dataset"] == "synthqa"
    (tmp_path / "bad.yaml").write_text("dataset: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")


def test_a_stage_runs_torch_on_the_threads_params_names():
    """The figures depend on the thread count (float reductions), so it is a param, not the machine's core count."""
    import torch

    from vila.runtime import setup

    params = load_params("params.yaml")
    params["cpu_isa"] = "native"  # this process loaded torch unpinned (test_cpu.py tests the pins)
    before = torch.get_num_threads()
    try:
        for kind, count in (("train", 1), ("evaluate", 3)):
            params["threads"][kind] = count
            setup(params, True, kind)
            assert torch.get_num_threads() == count
    finally:
        torch.set_num_threads(before)


def test_a_library_error_is_one_line_and_its_traceback_a_file(tmp_path, monkeypatch, capsys):
    """An error from deep inside a library (here safetensors reading a corrupt file) reaches the user as one line
    naming the exception and where its traceback went, never as a bare traceback; -v raises it."""
    from safetensors.torch import load_file

    import vila.reports.readme
    from vila.cli import main

    corrupt = tmp_path / "model.safetensors"
    corrupt.write_bytes(b"\xff" * 64)
    monkeypatch.setattr(vila.reports.readme, "write_readme", lambda params: load_file(corrupt))
    params = Path(__file__).resolve().parents[1] / "params.yaml"
    monkeypatch.chdir(tmp_path)
    assert main(["--params", str(params), "readme"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vila readme: error (SafetensorError): "), err
    saved = sorted((tmp_path / "logs" / "tracebacks").glob("vila-readme-*.txt"))
    assert len(saved) == 1 and str(saved[0].relative_to(tmp_path)) in err[0]
    assert "Traceback" in saved[0].read_text() and "SafetensorError" in saved[0].read_text()
    with pytest.raises(Exception, match="header"):
        main(["--params", str(params), "-v", "readme"])


def test_params_given_a_folder_is_one_line_naming_it(tmp_path, capsys):
    from vila.cli import main

    assert main(["--params", str(tmp_path), "readme"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a folder" in err[0] and str(tmp_path) in err[0], err


def test_a_real_dataset_without_weights_fails_before_any_stage(tmp_path):
    """Before: download and preprocess ran, then the backbone stage said the embedded backbone is synthqa's."""
    params = repo_params()
    params["dataset"] = "star"
    with pytest.raises(ParamsError, match=r"^params.yaml: model.weights: null, but dataset star needs InstructBLIP "
                                          r"weights on disk .*README, 'Real data and weights'"):
        validate(params)
    project = make_project(tmp_path / "p", params, dvc=True)
    for cmd in (["snakemake", "--cores", "1", "reproduce_table1"], ["dvc", "repro"]):
        out = run(cmd, project, check=False)
        assert out.returncode != 0 and "model.weights: null, but dataset star" in out.stdout + out.stderr, cmd
    assert not (project / "work").exists(), "a stage ran despite the missing weights"


def test_an_incomplete_weights_folder_is_named_at_validation(tmp_path):
    params = repo_params()
    params["model"]["weights"] = str(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ParamsError, match=f"model.weights: {tmp_path} is incomplete, it lacks tokenizer_config.json, "
                                          "qformer_tokenizer/tokenizer_config.json: download"):
        validate(params)
    params["model"]["weights"] = str(tmp_path / "absent")
    with pytest.raises(ParamsError, match="is not a directory"):
        validate(params)


def test_weights_digest_follows_content_not_path(tmp_path):
    from vila.models.weights import weights_digest

    w, cache = tmp_path / "w", tmp_path / "cache.json"
    (w / "qformer_tokenizer").mkdir(parents=True)
    (w / "model.safetensors").write_bytes(b"one")
    (w / "qformer_tokenizer" / "tokenizer_config.json").write_text("{}")
    first = weights_digest(str(w), cache)
    assert weights_digest(str(w), cache) == first == weights_digest(str(w))  # cached hashes are the same hashes
    (w / "model.safetensors").write_bytes(b"two")  # replaced in place: new size/mtime, new content
    assert weights_digest(str(w), cache) != first
    (w / "model.safetensors").write_bytes(b"one")
    assert weights_digest(str(w), cache) == first


def test_dvc_pipeline_lists_the_weights_only_when_params_set_them(tmp_path):
    from vila.pipeline.dvcfile import WEIGHTS_DEP, dvc_yaml_text, weights_dependency_missing

    params = repo_params()
    assert WEIGHTS_DEP not in dvc_yaml_text(params)  # null: DVC cannot template a null path
    params["model"]["weights"] = "/models/instructblip"
    text = dvc_yaml_text(params)
    stages = yaml.safe_load(text)["stages"]
    assert [n for n, s in stages.items() if WEIGHTS_DEP in s.get("deps", [])] == ["download", "backbone"]
    (tmp_path / "dvc.yaml").write_text(dvc_yaml_text(repo_params()))
    assert "run `vila pipeline`" in weights_dependency_missing(params, tmp_path)
    (tmp_path / "dvc.yaml").write_text(text)
    assert weights_dependency_missing(params, tmp_path) is None
