"""Every file read through one door that names it, checked on load, and outputs a colleague can read (#31).

Each probe is one a user meets: a params file with a key given twice, a folder where a file belongs, a JSON or
safetensors file cut short, an annotation whose answer is not one of its options, a model whose weights changed
after training. Each must end in one line naming the file (and the record or key), never a library traceback and
never a silent score.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
import yaml

from tests.conftest import repo_params
from vila.config import ParamsError, load_params
from vila.data.convert import AnnotationError, check_unified, convert, read_unified
from vila.io import atomic_dir, atomic_file, read_json, read_safetensors, read_yaml, write_json

QUESTION = {"qid": "Interaction_val_0", "video": "v0", "question": "where is the red object?", "a0": "top left",
            "a1": "top right", "a2": "bottom left", "a3": "bottom right", "num_option": 4, "answer": 2,
            "type": "Interaction"}


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


# ---- params and YAML ----
def test_a_key_given_twice_is_refused_with_the_file_and_the_key(tmp_path):
    text = yaml.safe_dump(repo_params(), sort_keys=False)
    (tmp_path / "params.yaml").write_text(text + "seed: 3\n")  # `seed` is already set above
    with pytest.raises(ParamsError) as e:
        load_params(tmp_path / "params.yaml")
    assert str(tmp_path / "params.yaml") in one_line(e.value) and "'seed' is given twice" in str(e.value)
    nested = tmp_path / "nested.yaml"
    nested.write_text("compare:\n  seed: 1\n  seed: 2\n")
    with pytest.raises(ValueError, match="'seed' is given twice"):
        read_yaml(nested)
    # the same key in two mappings is no duplicate
    (tmp_path / "fine.yaml").write_text("a:\n  seed: 1\nb:\n  seed: 2\n")
    assert read_yaml(tmp_path / "fine.yaml") == {"a": {"seed": 1}, "b": {"seed": 2}}


def test_params_that_are_a_folder_or_not_utf8_name_the_file(tmp_path):
    with pytest.raises(ParamsError, match="is a folder"):
        load_params(tmp_path)
    (tmp_path / "latin1.yaml").write_bytes("dataset: synthq\xe4\n".encode("latin-1"))
    with pytest.raises(ParamsError, match="latin1.yaml: not UTF-8"):
        load_params(tmp_path / "latin1.yaml")


# ---- JSON and safetensors ----
def test_json_cut_short_or_a_folder_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"epochs": [1, 2')
    with pytest.raises(ValueError) as e:
        read_json(path)
    assert one_line(e.value).startswith(f"{path}: not valid JSON")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        read_json(tmp_path)
    with pytest.raises(FileNotFoundError, match="file not found"):
        read_json(tmp_path / "absent.json")


def test_safetensors_with_a_broken_header_names_the_file(tmp_path):
    import torch
    from safetensors.torch import save_file

    good = tmp_path / "model.safetensors"
    save_file({"w": torch.arange(6, dtype=torch.float32)}, good)
    assert read_safetensors(good)["w"].tolist() == [0, 1, 2, 3, 4, 5]
    blob = bytearray(good.read_bytes())
    blob[:8] = (10**12).to_bytes(8, "little")  # a header length past the end of the file
    good.write_bytes(bytes(blob))
    with pytest.raises(ValueError) as e:
        read_safetensors(good)
    assert one_line(e.value).startswith(f"{good}: not a readable safetensors file")


# ---- unified annotations, checked on load ----
@pytest.mark.parametrize(("change", "field"), [
    ({"answer": 7}, "field 'answer' = 7: expected an option index in 0..3"),
    ({"answer": True}, "field 'answer' = True"),
    ({"num_option": 5}, "field 'a4'"),
    ({"video": ""}, "field 'video'"),
    ({"start": "abc"}, "fields 'start'/'end'"),
    ({"start": 9.0, "end": 2.0}, "ends before it starts"),
])
def test_an_annotation_is_checked_on_load_naming_file_record_and_field(tmp_path, change, field):
    path = tmp_path / "test.json"
    path.write_text(json.dumps([QUESTION, {**QUESTION, "qid": "Interaction_val_1", **change}]))
    with pytest.raises(AnnotationError) as e:
        read_unified(path)
    assert one_line(e.value).startswith(f"{path}: record 1 (qid Interaction_val_1): ") and field in str(e.value)


def test_a_record_that_is_not_an_object_and_duplicate_qids_are_named(tmp_path):
    with pytest.raises(AnnotationError, match=r"x.json: record 1: is a list, expected an object"):
        check_unified([QUESTION, ["not", "a", "record"]], "x.json")
    with pytest.raises(AnnotationError, match=r"x.json: duplicate qids \['Interaction_val_0'\]"):
        check_unified([QUESTION, QUESTION], "x.json")
    with pytest.raises(AnnotationError, match="is a JSON dict, expected a list"):
        check_unified({"questions": [QUESTION]}, "x.json")
    moment = {"qid": "moment_0", "video": "m0", "question": "the red object", "num_option": 0,
              "relevant_frames": [3, 4]}
    assert check_unified([moment], "moments.json", moments=True) == [moment]
    with pytest.raises(AnnotationError, match="relevant_frames"):
        check_unified([{**moment, "relevant_frames": "3,4"}], "moments.json", moments=True)
    assert check_unified([{**QUESTION, "question": ""}], "vlep.json")  # VLEP has no question text


def test_vila_score_refuses_an_answer_outside_the_options(tmp_path, capsys):
    """Before: exit 0 and the question silently scored as wrong."""
    from vila.cli import main

    ann, preds = tmp_path / "test.json", tmp_path / "preds.json"
    ann.write_text(json.dumps([{**QUESTION, "answer": 7}]))
    preds.write_text(json.dumps({QUESTION["qid"]: 2}))
    assert main(["score", "star", "--annotations", str(ann), "--predictions", str(preds)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(ann) in err[0] and "field 'answer' = 7" in err[0], err


def test_star_records_that_are_not_objects_or_have_no_number_for_a_time_are_named(tmp_path):
    from tests.test_convert_score import STAR

    (tmp_path / "STAR_val.json").write_text(json.dumps([STAR[0], "a string"]))
    with pytest.raises(AnnotationError, match=r"STAR_val.json\[1\]: is a str, expected a question object"):
        convert("star", tmp_path, tmp_path / "out")
    (tmp_path / "STAR_val.json").write_text(json.dumps([{**STAR[0], "start": "abc"}]))
    with pytest.raises(AnnotationError, match=r"STAR_val.json\[0\] .*field 'start' = 'abc' is not a time in seconds"):
        convert("star", tmp_path, tmp_path / "out")


# ---- weights checked against the digest their training wrote ----
def test_a_model_whose_weights_changed_after_saving_is_refused(tmp_path, backbone):
    from vila.models.build import WEIGHTS_DIGESTS, load_model, save_model

    model, tokenizer = backbone
    save_model(model, tokenizer, tmp_path / "m")
    digests = read_json(tmp_path / "m" / WEIGHTS_DIGESTS)
    assert sorted(digests) == ["model.safetensors"]
    loaded, _ = load_model(tmp_path / "m")
    assert all(a.equal(b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True))
    weights = tmp_path / "m" / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-100] ^= 0x01  # one bit of one tensor: still a valid safetensors file
    weights.write_bytes(bytes(blob))
    with pytest.raises(ValueError) as e:
        load_model(tmp_path / "m")
    assert one_line(e.value).startswith(f"{weights}: sha256 ") and "its training wrote" in str(e.value)
    (tmp_path / "m" / WEIGHTS_DIGESTS).unlink()  # a save_pretrained folder from elsewhere: no digests to check
    load_model(tmp_path / "m")


# ---- outputs with the user's umask ----
@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_get_the_users_umask(tmp_path, mask, file_mode, dir_mode):
    before = os.umask(mask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_file(tmp_path / "b.html") as tmp:
            tmp.write_text("<p>report</p>")
        with atomic_dir(tmp_path / "model") as tmp:
            write_json(tmp / "metrics.json", {})
    finally:
        os.umask(before)
    for name in ("a.json", "b.html", "model/metrics.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == file_mode, name
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == dir_mode


def test_a_weights_folder_without_weights_names_what_it_lacks(tmp_path):
    """Before: a transformers OSError from deep inside from_pretrained."""
    from vila.training.backbone import load_instructblip

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as e:
        load_instructblip(str(tmp_path), "flant5xl")
    assert one_line(e.value).startswith(f"model.weights: {tmp_path} is incomplete, it lacks tokenizer_config.json, "
                                        "qformer_tokenizer/tokenizer_config.json, model.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-1.safetensors"}}))
    with pytest.raises(FileNotFoundError, match="lacks tokenizer_config.json, qformer_tokenizer/tokenizer_config.json, model-1.safetensors:"):
        load_instructblip(str(tmp_path), "flant5xl")


def test_a_report_cell_that_fails_is_one_line_naming_the_notebook_and_the_cause(tmp_path, monkeypatch):
    """Before: papermill's 86-line traceback ending in a JSONDecodeError; now the cell's own one-line error (our
    readers name the file) after the notebook's path, and no half-written report."""
    import papermill

    from vila.reports.render import render

    def failing(*args, **kwargs):
        raise papermill.PapermillExecutionError(3, 3, "load_eval(results)", "ValueError",
                                                "results/synthqa/eval/uniform_4f.json: not valid JSON (Expecting "
                                                "value at line 1)", ["Traceback ...", "  many lines"])

    monkeypatch.setattr(papermill, "execute_notebook", failing)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "table1.ipynb").write_text("{}")
    with pytest.raises(ValueError) as e:
        render(("table1",), repo_params())
    assert one_line(e.value) == ("notebooks/table1.ipynb: ValueError: results/synthqa/eval/uniform_4f.json: not valid "
                                 "JSON (Expecting value at line 1)")
    assert not list((tmp_path / "reports").glob("*"))


def test_identity_check_of_an_unknown_commit_is_one_line(tmp_path):
    """Before: a CalledProcessError traceback from `git show`."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    out = subprocess.run([sys.executable, str(ROOT / "workflow/scripts/eval_identity.py"), "deadbeef"], cwd=tmp_path,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert one_line(out.stderr.rstrip("\n")).startswith("make identity REV=deadbeef: no dvc.lock at that commit here")
