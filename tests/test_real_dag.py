"""Table 1 from a real-format dataset, as the README's "Real data and weights" says to run it: the official STAR
(and NExT-QA) files and videos under data/<dataset>/, QVHighlights under data/qvhighlights/, a save_pretrained
InstructBLIP on disk (tiny, random, its tokenizer covering the data), params.yaml's `dataset` and `model.weights`
set, `vila pipeline`, then `snakemake --cores 2 reproduce_table1` with the smoke profile's sizes. Checked: the split
each figure is on (the official val, reported; the weights chosen on a carve-out of train), the report's wording,
which frames each model read; and that new weights at the same path rerun the stages that read them (both tools).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import env, make_project, run, smoke_params
from tests.test_real_formats import FPS, MOMENTS, grey_clip, save_tiny_instructblip, write_moments
from vila.data.video import write_clip

pytestmark = pytest.mark.slow
TRAIN_VIDEOS, VAL_VIDEOS = 10, 4  # official splits; two questions per video
STAR_TYPES = ["Interaction", "Sequence", "Prediction", "Feasibility"]
NEXTQA_TYPES = ["CW", "TN", "DC", "TP"]
OBJECTS = ["cup", "book", "towel", "phone", "box"]


def star_records(split: str, videos: list[str]) -> list[dict[str, Any]]:
    records = []
    for v, video in enumerate(videos):
        for q in range(2):
            n = 2 * v + q
            kind, choices = STAR_TYPES[n % 4], [f"Took the {o}." for o in OBJECTS[:4]]
            records.append({"question_id": f"{kind}_T{n % 7 + 1}_{split}_{n}", "question": "What did the person take?",
                            "video_id": video, "start": 1.0 + q, "end": 9.0, "answer": choices[n % 4],
                            "choices": [{"choice_id": i, "choice": c} for i, c in enumerate(choices)], "situations": {}})
    return records


def nextqa_rows(videos: list[str]) -> list[list[Any]]:
    return [[video, 80, 64, 48, "what did the boy take", (2 * v + q) % 5, q, NEXTQA_TYPES[(2 * v + q) % 4], *OBJECTS]
            for v, video in enumerate(videos) for q in range(2)]


def write_dataset(data: Path, dataset: str) -> list[str]:
    """The official files and videos of a mini dataset; returns the texts the tokenizer must know."""
    ann, videos = data / dataset / "annotations", data / dataset / "videos"
    ann.mkdir(parents=True)
    ids = {"train": [f"TR{i:03d}" for i in range(TRAIN_VIDEOS)], "val": [f"VA{i:03d}" for i in range(VAL_VIDEOS)]}
    if dataset == "nextqa":
        ids = {s: [str(4000000000 + 100 * (s == "val") + i) for i in range(len(v))] for s, v in ids.items()}
        for split, vids in ids.items():
            with open(ann / f"{split}.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["video", "frame_count", "width", "height", "question", "answer", "qid", "type",
                            "a0", "a1", "a2", "a3", "a4"])
                w.writerows(nextqa_rows(vids))
        (ann / "map_vid_vidorID.json").write_text(json.dumps({v: f"0000/{v}" for vids in ids.values() for v in vids}))
        texts = ["what did the boy take?", *(o + "." for o in OBJECTS)]
    else:
        for split, vids in ids.items():
            (ann / f"STAR_{split}.json").write_text(json.dumps(star_records(split, vids)))
        texts = ["What did the person take?", *(f"Took the {o}." for o in OBJECTS)]
    for vids in ids.values():
        for video in vids:
            stem = f"0000/{video}" if dataset == "nextqa" else video
            (videos / stem).parent.mkdir(parents=True, exist_ok=True)
            write_clip(videos / f"{stem}.mp4", grey_clip((64, 48)), fps=FPS)
    return texts


def real_smoke_params(dataset: str, weights: Path) -> dict[str, Any]:
    """The smoke profile, with one model of each kind (the paper's ViLA at 4 frames, SeViLA at k = 4 and its
    ablations, the teachers of 4 and 32 frames): the other variants run the same code (tests/test_smoke_dag.py)."""
    p = smoke_params()
    p["dataset"] = dataset
    p["model"]["weights"] = str(weights)
    p["data"]["validation"]["fraction"] = 0.2  # 2 of official train's 10 videos
    p["sevila"].update(pretrain_val_clips=2, frames=[4])
    p["variants"] = {"vila_4f": {}}
    p["selection"].update(scorers=["backbone", "sevila_4f", "vila_4f"],
                          selectors=[s for s in p["selection"]["selectors"] if s != "vila_fast"])
    p["speed"].update(repeats=20, breakdown_repeats=1, warmup=1)
    return p


def project_for(root: Path, dataset: str, dvc: bool = False) -> Path:
    """The user's project: the repo's files, the mini dataset and QVHighlights under data/, the weights outside it,
    params.yaml set for them, and `vila pipeline` run (the README's steps)."""
    project = root / "project"
    texts = write_dataset(project / "data", dataset)
    moments = [{**MOMENTS[i % 2], "qid": i, "vid": f"qv_{i}_0.0_150.0", "relevant_windows": [[i, i + 2]]} for i in range(6)]
    write_moments(project / "data", moments)
    weights = save_tiny_instructblip(root / "weights" / "instructblip-tiny", texts + [m["query"] for m in MOMENTS])
    make_project(project, real_smoke_params(dataset, weights), dvc=dvc)
    run(["vila", "pipeline"], project)
    return project


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    """dataset -> its project after `snakemake --cores 2 reproduce_table1`. Both datasets' runs start together at
    the first request: each DAG has one-job stretches (download, preprocess, backbone, the report) that the other
    fills, so the pair takes less than the two in turn."""
    started = {d: project_for(tmp_path_factory.mktemp(d), d, dvc=True) for d in ("star", "nextqa")}
    procs = {d: subprocess.Popen(["snakemake", "--cores", "2", "reproduce_table1"], cwd=project, env=env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for d, project in started.items()}

    def get(dataset: str) -> Path:
        out, _ = procs[dataset].communicate(timeout=1500)
        assert procs[dataset].returncode == 0, f"snakemake reproduce_table1 ({dataset}) failed:\n{out[-4000:]}"
        return started[dataset]

    yield get
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("dataset", ["star", "nextqa"])
def test_table1_from_a_real_format_dataset(dataset, finished):
    project = finished(dataset)
    assert "${model.weights}" in (project / "dvc.yaml").read_text()
    stats = json.loads((project / f"work/{dataset}/dataset/stats.json").read_text())
    roles = {s: json.loads((project / f"work/{dataset}/dataset/annotations/{s}.json").read_text())
             for s in ("train", "val", "test")}
    official_val = 2 * VAL_VIDEOS
    assert len(roles["test"]) == official_val and len({it["video"] for it in roles["val"]}) == 2
    assert all(it["video"].startswith(("VA", "40000001")) for it in roles["test"])
    assert not {it["video"] for it in roles["val"]} & {it["video"] for it in roles["train"]}
    assert len(roles["train"]) + len(roles["val"]) == 2 * TRAIN_VIDEOS and stats["tokenizer"]["language_model"]["unknown"] == stats["tokenizer"]["qformer"]["unknown"] == 0
    # the weights were chosen on the carve-out (its 4 questions, not the official val's 8)
    for name in ("uniform_4f", "vila_4f"):
        metrics = json.loads((project / f"models/{dataset}/{name}/metrics.json").read_text())
        assert metrics["kept"].endswith(f"on {len(roles['val'])} questions") and len(roles["val"]) != official_val
    # every figure is on the official val split, and each model read the frames its rule picks
    for name in ("uniform_4f", "uniform_32f", "vila_4f", "sevila_4f"):
        result = json.loads((project / f"results/{dataset}/eval/{name}.json").read_text())
        assert result["dataset"] == dataset and result["split"] == "test" and result["n"] == official_val
        assert set(result["predictions"]) == {it["qid"] for it in roles["test"]}
        chosen = result["selection"]["chosen"]
        assert "keyframe_recall" not in result["selection"]  # no ground-truth key frames in real data
        assert len(chosen) == 4 and set(chosen) <= set(result["predictions"])  # evaluate.chosen_sample: 4
        if name == "uniform_4f":  # the middle frame of each of 4 equal intervals of the 32-frame grid
            assert all(c == [4, 12, 20, 28] for c in chosen.values()), chosen
        elif name == "uniform_32f":
            assert all(c == list(range(32)) for c in chosen.values())
        else:  # a selector's 4 distinct frames in time order (ViLA: one per segment of 8)
            assert all(len(c) == 4 and c == sorted(set(c)) and c[-1] < 32 for c in chosen.values()), (name, chosen)
            if name == "vila_4f":
                assert all(c[i] // 8 == i for c in chosen.values() for i in range(4)), chosen
    accuracy = json.loads((project / f"results/{dataset}/eval/uniform_4f.json").read_text())["accuracy"]
    assert set(accuracy) >= ({*STAR_TYPES} if dataset == "star" else {"Causal", "Temporal", "Descriptive"})
    text = re.sub(r"<[^>]+>", " ", (project / "reports/table1.html").read_text())
    assert f"Table 1: ViLA on {dataset}" in text
    official = "STAR_val.json" if dataset == "star" else "val.csv"
    assert f"test  = official {official}, the split ViLA and SeViLA report for {'STAR' if dataset == 'star' else 'NExT-QA'} " \
           f"({official_val} questions)" in text
    assert "val  = a seeded 20% of official train's videos (chooses the weights; never reported)" in text
    assert "official val questions" in text and "stands in" not in text and "synthqa" not in text
    columns = ["Int", "Seq", "Pre", "Fea"] if dataset == "star" else ["Tem", "Cau", "Des"]
    assert all(f" {c} " in text for c in columns)


def test_new_weights_at_the_same_path_rerun_what_reads_them(finished):
    """Snakemake (a digest of the weights' content among the jobs' params) and DVC (the weights directory as a
    dependency) see new weights at the same path, and nothing when they are unchanged."""
    project = finished("star")
    weights = Path(yaml.safe_load((project / "params.yaml").read_text())["model"]["weights"])
    run(["dvc", "commit", "--force", "--quiet", "download", "preprocess", "backbone"], project)  # what Snakemake made

    def stale() -> tuple[str, list[str]]:
        dry = run(["snakemake", "-n", "--cores", "1", "reproduce_table1"], project).stdout
        return dry, sorted(json.loads(run(["dvc", "status", "--json", "download", "backbone"], project).stdout))

    dry, dvc_stale = stale()
    assert "rule backbone" not in dry and dvc_stale == []
    blob = bytearray((weights / "model.safetensors").read_bytes())
    blob[-1] ^= 1  # other weights, same path, same size
    (weights / "model.safetensors").write_bytes(bytes(blob))
    dry, dvc_stale = stale()
    assert "rule download" in dry and "rule backbone" in dry and "rule report" in dry, dry[-2000:]
    assert dvc_stale == ["backbone", "download"]
