"""Official-format samples written by hand, converted and scored; an independent scorer checks the figures."""

import csv
import json

import pytest

from vila.data.convert import AnnotationError, convert
from vila.data.metrics import score

STAR = [
    {"question_id": "Interaction_T1_1", "question": "What did the person do with the cup?", "video_id": "6H78U",
     "start": 11.1, "end": 19.6, "answer": "Took.", "situations": {},
     "choices": [{"choice_id": 0, "choice": "Put down."}, {"choice_id": 1, "choice": "Took."},
                 {"choice_id": 2, "choice": "Threw."}, {"choice_id": 3, "choice": "Washed."}]},
    {"question_id": "Sequence_T3_7", "question": "What happened after the person opened the door?", "video_id": "Y79PC",
     "start": 0.0, "end": 8.2, "answer": "Sat on the bed.",
     "choices": [{"choice_id": 0, "choice": "Sat on the bed."}, {"choice_id": 1, "choice": "Ate."},
                 {"choice_id": 2, "choice": "Ran."}, {"choice_id": 3, "choice": "Slept."}]},
    {"question_id": "Feasibility_T5_2", "question": "What else is the person able to do?", "video_id": "Y79PC",
     "start": 1.0, "end": 5.0, "answer": "Open the box.",
     "choices": [{"choice_id": 0, "choice": "Fly."}, {"choice_id": 1, "choice": "Swim."},
                 {"choice_id": 2, "choice": "Open the box."}, {"choice_id": 3, "choice": "Drive."}]},
]
NEXTQA_HEADER = ["video", "frame_count", "width", "height", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4"]
NEXTQA = [
    ["4010069381", 1056, 640, 480, "why did the boy pick up the ball", 2, 6, "CW", "cry", "play", "throw it", "eat", "sleep"],
    ["4010069381", 1056, 640, 480, "what did the boy do after he fell", 0, 7, "TN", "stand up", "sit", "cry", "run", "jump"],
    ["3249402410", 900, 640, 360, "how many dogs are there", 1, 2, "DC", "one", "two", "three", "four", "five"],
    ["3249402410", 900, 640, 360, "what is the dog doing before running", 4, 3, "TP", "a", "b", "c", "d", "e"],
]


def write_star(d):
    (d / "STAR_val.json").write_text(json.dumps(STAR))


def write_nextqa(d, rows=NEXTQA, name="val.csv"):
    with open(d / name, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(NEXTQA_HEADER)
        w.writerows(rows)


def independent_accuracy(items, preds, key):
    """A scorer written separately from vila.data.metrics: group by `key(item)`."""
    groups = {}
    for it in items:
        groups.setdefault(key(it), []).append(preds[it["qid"]] == it["answer"])
    return {g: sum(v) / len(v) for g, v in groups.items()}


def test_star_convert_and_score(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    write_star(src)
    assert convert("star", src, out) == {"val": 3}
    items = json.loads((out / "val.json").read_text())
    assert items[0] == {"video": "6H78U", "qid": "Interaction_T1_1", "question": "What did the person do with the cup?",
                        "answer": 1, "type": "Interaction", "start": 11.1, "end": 19.6, "a0": "Put down.",
                        "a1": "Took.", "a2": "Threw.", "a3": "Washed.", "num_option": 4}
    preds = {"Interaction_T1_1": 1, "Sequence_T3_7": 2, "Feasibility_T5_2": 2}
    result = score("star", items, preds)
    ref = independent_accuracy(items, preds, lambda it: it["qid"].split("_")[0])
    for t, v in ref.items():
        assert result[t] == v
    assert result["overall"] == pytest.approx(2 / 3)
    assert result["mean"] == pytest.approx(sum(ref.values()) / len(ref))


def test_nextqa_convert_and_score(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    write_nextqa(src)
    assert convert("nextqa", src, out) == {"val": 4}
    items = json.loads((out / "val.json").read_text())
    assert items[0]["qid"] == "CW_4010069381_6" and items[0]["question"].endswith("?") and items[0]["a2"] == "throw it."
    assert items[0]["num_option"] == 5 and items[0]["answer"] == 2
    preds = {"CW_4010069381_6": 2, "TN_4010069381_7": 1, "DC_3249402410_2": 1, "TP_3249402410_3": 4}
    result = score("nextqa", items, preds)
    fine = independent_accuracy(items, preds, lambda it: it["qid"].split("_")[0])
    group = {"CW": "Causal", "CH": "Causal", "TN": "Temporal", "TC": "Temporal", "TP": "Temporal",
             "DL": "Descriptive", "DC": "Descriptive", "DO": "Descriptive"}
    groups = independent_accuracy(items, preds, lambda it: group[it["qid"].split("_")[0]])
    for k, v in {**fine, **groups}.items():
        assert result[k] == pytest.approx(v)
    assert result["Temporal"] == 0.5 and result["Causal"] == 1.0
    assert result["mean"] == pytest.approx((1.0 + 0.5 + 1.0) / 3)
    assert result["overall"] == 0.75


def test_tvqa_how2qa_vlep(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    tv = {"vid_name": "s01e01_seg02_clip_00", "q": "Where is Sheldon?", "qid": 11, "answer_idx": 3, "ts": "60.33-71.22",
          **{f"a{i}": f"opt{i}" for i in range(5)}}
    (src / "tvqa_val.jsonl").write_text(json.dumps(tv) + "\n" + json.dumps({**tv, "qid": 12, "ts": "NaN-NaN"}) + "\n")
    h2 = {"vid_name": "v_abc", "q": "What tool?", "answer_idx": 0, "ts": "5-10.5", **{f"a{i}": f"o{i}" for i in range(4)}}
    (src / "how2qa_val_release.jsonl").write_text(json.dumps(h2) + "\n")
    vl = {"example_id": 20142, "vid_name": "friends_s03e09_seg02_clip_07_ep", "events": ["He leaves.", "He sits."],
          "answer": 1, "ts": [38.18, 40.52]}
    (src / "vlep_dev_release.jsonl").write_text(json.dumps(vl) + "\n")
    assert convert("tvqa", src, out / "tv") == {"val": 2}
    tvi = json.loads((out / "tv" / "val.json").read_text())
    assert tvi[0]["start"] == 60.33 and tvi[0]["end"] == 71.22 and "start" not in tvi[1] and tvi[0]["num_option"] == 5
    assert convert("how2qa", src, out / "h2") == {"val": 1}
    assert json.loads((out / "h2" / "val.json").read_text())[0]["num_option"] == 4
    assert convert("vlep", src, out / "vl") == {"val": 1}
    vli = json.loads((out / "vl" / "val.json").read_text())[0]
    assert vli["num_option"] == 2 and vli["answer"] == 1 and vli["qid"] == "20142" and vli["question"] == ""
    assert score("vlep", [vli], {"20142": 1}) == {"overall": 1.0}


@pytest.mark.parametrize(
    "record, message",
    [
        ({k: v for k, v in STAR[0].items() if k != "question"}, "missing field 'question'"),
        ({**STAR[0], "answer": "Flew."}, "is not among the choices"),
    ],
)
def test_star_bad_records_are_named(tmp_path, record, message):
    (tmp_path / "STAR_train.json").write_text(json.dumps([record]))
    with pytest.raises(AnnotationError, match=message) as err:
        convert("star", tmp_path, tmp_path / "out")
    assert "STAR_train.json[0]" in str(err.value) and "Interaction_T1_1" in str(err.value)


def test_nextqa_answer_out_of_range_is_named(tmp_path):
    row = list(NEXTQA[0])
    row[5] = 7
    write_nextqa(tmp_path, [row], name="train.csv")
    with pytest.raises(AnnotationError, match=r"train.csv:2: field 'answer' = 7 is out of range"):
        convert("nextqa", tmp_path, tmp_path / "out")


def test_score_rejects_unknown_and_missing_predictions():
    items = [{"qid": "Interaction_a", "answer": 0, "num_option": 4}, {"qid": "Sequence_b", "answer": 1, "num_option": 4}]
    with pytest.raises(KeyError, match="Sequence_b"):
        score("star", items, {"Interaction_a": 0})
    with pytest.raises(KeyError, match="Bogus_c"):
        score("star", items, {"Interaction_a": 0, "Sequence_b": 1, "Bogus_c": 2})
    with pytest.raises(ValueError, match="option index"):
        score("star", items, {"Interaction_a": 0, "Sequence_b": 9})


def test_missing_splits_are_reported(tmp_path, capsys):
    write_star(tmp_path)
    from vila.data.convert import convert_cli

    convert_cli("star", str(tmp_path), str(tmp_path / "out"))
    report = json.loads(capsys.readouterr().out)
    assert report == {"converted": {"val": 3}, "missing": ["STAR_train.json"]}


def test_score_cli(tmp_path, capsys):
    write_star(tmp_path)
    convert("star", tmp_path, tmp_path / "out")
    (tmp_path / "pred.json").write_text(json.dumps({"Interaction_T1_1": 1, "Sequence_T3_7": 0, "Feasibility_T5_2": 0}))
    from vila.cli import main

    assert main(["score", "star", "--annotations", str(tmp_path / "out" / "val.json"),
                 "--predictions", str(tmp_path / "pred.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["Interaction"] == 1.0 and result["Feasibility"] == 0.0 and result["overall"] == pytest.approx(2 / 3)


def test_download_of_a_real_dataset_verifies_and_says_what_is_missing(tmp_path):
    """Each missing piece named with where it goes and where to get it, in the order download meets them (the
    success path, with weights and videos: tests/test_real_formats.py)."""
    from vila.data.real import prepare_real_dataset

    params = {"dataset": "star", "data": {"frames": 32, "validation": {"fraction": 0.5, "seed": 0}},
              "model": {"weights": str(tmp_path / "weights")}}
    data, raw = tmp_path / "data", tmp_path / "data" / "star"
    with pytest.raises(FileNotFoundError, match=r"STAR_train.json, STAR_val.json.*Charades"):
        prepare_real_dataset(params, data, tmp_path / "out")
    (raw / "annotations").mkdir(parents=True)
    write_star(raw / "annotations")  # STAR_val.json only
    with pytest.raises(FileNotFoundError, match=r"STAR_train.json not found: star's models train on official train "
                                                r"and are reported on official val"):
        prepare_real_dataset(params, data, tmp_path / "out")
    (raw / "annotations" / "STAR_train.json").write_text(json.dumps(
        [{**q, "question_id": q["question_id"] + "_t", "video_id": v} for q, v in zip(STAR, ["T1", "T2", "T3"], strict=True)]))
    with pytest.raises(FileNotFoundError, match=r"highlight_train_release.jsonl: not found. SeViLA's Localizer is "
                                                r"pre-trained on moment retrieval.*data/qvhighlights/videos/"):
        prepare_real_dataset(params, data, tmp_path / "out")
    (data / "qvhighlights" / "annotations").mkdir(parents=True)
    (data / "qvhighlights" / "annotations" / "highlight_train_release.jsonl").write_text(json.dumps(
        {"qid": 1, "query": "a cup", "vid": "q1", "duration": 30, "relevant_windows": [[2, 6]]}) + "\n")
    with pytest.raises(FileNotFoundError, match="no videos of star found"):
        prepare_real_dataset(params, data, tmp_path / "out")
    # the roles: test = official val; the carve-out (half of train's 3 videos: 2) and train share no video
    roles = {s: json.loads((tmp_path / "out" / "annotations" / f"{s}.json").read_text()) for s in ("train", "val", "test")}
    assert [it["qid"] for it in roles["test"]] == [q["question_id"] for q in STAR]
    assert len({it["video"] for it in roles["val"]}) == 2 and len(roles["train"]) == 1
    assert not {it["video"] for it in roles["val"]} & {it["video"] for it in roles["train"]}


def test_carve_out_is_seeded_by_video_and_leaves_something_to_train_on():
    from vila.data.real import carve_out

    items = [{"video": f"v{i % 10}", "qid": str(i)} for i in range(40)]
    kept, held = carve_out(items, 0.2, seed=3)
    assert (kept, held) == carve_out(items, 0.2, seed=3) and held != carve_out(items, 0.2, seed=4)[1]
    assert len({it["video"] for it in held}) == 2 and len(held) == 8 and len(kept) == 32
    assert not {it["video"] for it in held} & {it["video"] for it in kept}
    assert [it["qid"] for it in kept] == sorted((it["qid"] for it in kept), key=int)  # order kept
    with pytest.raises(ValueError, match="data.validation.fraction: 0.5 of official train's 1 videos leaves none"):
        carve_out(items[:1], 0.5, seed=0)
