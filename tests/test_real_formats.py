"""Real-format datasets end to end through `vila download` and `vila preprocess` (in-process CLI).

Per dataset: the official annotation files under their official names and record layouts
(vila-method.md, "Data format used by the code"), videos written at real-ish sizes whose flat grey
frames encode their own index (20 + 2 t, decodes within +-1), one corrupt video and one missing one;
QVHighlights' moment set beside them (SeViLA's Localizer pre-training), and a tiny save_pretrained
InstructBLIP whose tokenizer covers every word (a real dataset is read with weights on disk only).
The expected grid is computed here, independently of vila.data.video.grid_indices.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import repo_params
from vila.cli import main
from vila.data import registry
from vila.data.dataset import clip_id
from vila.data.video import write_clip

FPS, N_FRAMES, COUNT, SIZE = 8, 80, 32, 32  # 10 s clips; data.frames 32; the tiny preset's 32x32 frames
PROGRESS = re.compile(r"preprocess (train|val|test): decoding: +\d+%\|.*\]$")
DATASETS = list(registry.REAL)  # every dataset read from official files
# Clip slots: (frame size WxH, span in seconds or None). "bad" is the corrupt file, "gone" the missing one.
# Spans: inside the clip, past its end (clamped to the last frame), and unknown (the whole video).
GOOD = {"a": ((176, 144), (2.0, 7.5)), "b": ((96, 54), (0.5, 10.0)), "c": ((480, 270), (3.25, 6.0)),
        "d": ((50, 50), None)}
# Video ids in each dataset's own style.
IDS = {
    "star": {"a": "6H78U", "b": "Y79PC", "c": "0A8CF", "d": "3MSZA", "bad": "ZZ0BD", "gone": "QX4M2"},
    "nextqa": {"a": "4010069381", "b": "3249402410", "c": "2440175990", "d": "5331024066", "bad": "7772910001",
               "gone": "8820014567"},
    "tvqa": {"a": "s01e02_seg02_clip_03", "b": "friends_s01e03_seg02_clip_19", "c": "met_s02e11_seg01_clip_04",
             "d": "castle_s03e07_seg02_clip_12", "bad": "grey_s04e01_seg01_clip_00", "gone": "house_s02e05_seg02_clip_21"},
    "how2qa": {"a": "-0a4pqxK_Nc_0_60", "b": "3zXQ9Ba1Mk0_60_120", "c": "Hh1w8tTvo7E_0_60", "d": "q_ZJ2kRb7aU_120_180",
               "bad": "Wm9cPx0LdEs_0_60", "gone": "aB3dE5fG7hI_60_120"},
    "vlep": {"a": "friends_s03e09_seg02_clip_07_ep", "b": "lifestyle_x2XyKn8V0aQ_1", "c": "met_s05e12_seg01_clip_02_ep",
             "d": "lifestyle_Qm7Tz1pR4bY_3", "bad": "bbt_s02e03_seg02_clip_05_ep", "gone": "lifestyle_Zk0Pq9Wn2sE_2"},
}


def splits_of(dataset: str) -> dict[str, list[str]]:
    """Slots per split. Where the corrupt and the missing video fall alternates, so that the first bad
    video preprocess meets (train comes first) is the corrupt one for some datasets, the missing for others."""
    first, second = ("bad", "gone") if DATASETS.index(dataset) % 2 == 0 else ("gone", "bad")
    return {"train": ["a", "b", first, "a"], "val": ["c", "d", second]}  # "a" twice: two questions, one clip


def span_of(dataset: str, slot: str) -> tuple[float, float] | None:
    if dataset == "nextqa" or slot in ("bad", "gone"):
        return None if dataset == "nextqa" else (1.0, 4.0)
    span = GOOD[slot][1]
    if span is None and dataset in ("star", "vlep"):  # these formats always give a span
        return (0.0, 10.0)
    return span


def nextqa_stem(video: str) -> str:
    return f"{int(video) % 1000:04d}/{video}"  # map_vid_vidorID.json: numeric id -> 'dir/stem'


def grey_clip(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    values = (20 + 2 * np.arange(N_FRAMES)).astype(np.uint8)
    return np.broadcast_to(values[:, None, None, None], (N_FRAMES, h, w, 3)).copy()


def write_annotations(ann: Path, dataset: str) -> None:
    files = registry.DATASETS[dataset].official_files
    maps = {}
    for split, slots in splits_of(dataset).items():
        name = files["val"] if split == "val" else files["train"]
        records: list[Any] = []
        for n, slot in enumerate(slots):
            video, span = IDS[dataset][slot], span_of(dataset, slot)
            ts = "NaN-NaN" if span is None else f"{span[0]:g}-{span[1]:g}"
            if dataset == "star":
                kind = ["Interaction", "Sequence", "Prediction", "Feasibility"][n % 4]
                choices = [f"Took the {o}." for o in ("cup", "book", "towel", "phone")]
                records.append({"question_id": f"{kind}_T{n + 1}_{split}{n}", "question": "What did the person do?",
                                "video_id": video, "start": span[0], "end": span[1], "answer": choices[n % 4],
                                "choices": [{"choice_id": i, "choice": c} for i, c in enumerate(choices)],
                                "situations": {}})
            elif dataset == "nextqa":
                maps[video] = nextqa_stem(video)
                records.append([video, N_FRAMES, *GOOD.get(slot, ((640, 480), None))[0], "why did the boy run",
                                n % 5, n, ["CW", "TN", "DC", "TP"][n % 4], "cry", "play", "throw it", "eat", "sleep"])
            elif dataset in ("tvqa", "how2qa"):
                k = 5 if dataset == "tvqa" else 4
                rec = {"vid_name": video, "q": "What is he holding?", **{f"a{i}": f"Option {i}" for i in range(k)},
                       "answer_idx": n % k, "ts": ts}
                if dataset == "tvqa":
                    rec.update(qid=1000 * (split == "val") + n, show_name="Friends")
                records.append(rec)
            else:
                records.append({"example_id": 20000 * (split == "val") + n, "vid_name": video,
                                "events": ["He sits down.", "He leaves the room."], "answer": n % 2,
                                "ts": list(span)})
        path = ann / name
        if dataset == "star":
            path.write_text(json.dumps(records))
        elif dataset == "nextqa":
            with open(path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["video", "frame_count", "width", "height", "question", "answer", "qid", "type",
                            "a0", "a1", "a2", "a3", "a4"])
                w.writerows(records)
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
    if dataset == "nextqa":
        (ann / "map_vid_vidorID.json").write_text(json.dumps(maps))


def video_file(raw: Path, dataset: str, slot: str) -> Path:
    video = IDS[dataset][slot]
    return raw / "videos" / f"{nextqa_stem(video) if dataset == 'nextqa' else video}.mp4"


# QVHighlights' records (its official layout): two windows, one between two grid frames (names the nearest)
MOMENTS = [{"qid": 101, "query": "A man pours the tea.", "vid": "qv_a_60.0_210.0", "duration": 10,
            "relevant_windows": [[2, 4], [8.5, 8.6]], "relevant_clip_ids": [1], "saliency_scores": [[2, 3, 4]]},
           {"qid": 102, "query": "The woman waves.", "vid": "qv_b_0.0_150.0", "duration": 10,
            "relevant_windows": [[0, 1]], "relevant_clip_ids": [0], "saliency_scores": [[1, 1, 1]]}]


def moment_frames(record: dict[str, Any]) -> list[int]:
    """The grid frames a record names, computed here: frame k at (k + 1/2) * duration / COUNT seconds."""
    times = [(k + 0.5) * record["duration"] / COUNT for k in range(COUNT)]
    out: set[int] = set()
    for s, e in record["relevant_windows"]:
        inside = {k for k, t in enumerate(times) if s <= t < e}
        out |= inside or {int(np.argmin([abs(t - (s + e) / 2) for t in times]))}
    return sorted(out)


def write_moments(data: Path, records: list[dict[str, Any]] = MOMENTS) -> None:
    root = data / "qvhighlights"
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "highlight_train_release.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for r in records:
        path = root / "videos" / f"{r['vid']}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_clip(path, grey_clip((64, 48)), fps=FPS)


def fixture_words(texts: list[str]) -> list[str]:
    """The words a whitespace word-level tokenizer splits `texts` into."""
    from tokenizers.pre_tokenizers import Whitespace

    return [w for text in texts for w, _ in Whitespace().pre_tokenize_str(text)]


def save_tiny_instructblip(path: Path, texts: list[str]) -> Path:
    """A tiny random InstructBLIP in the save_pretrained layout (config, safetensors, both tokenizers), whose
    word tokenizer knows the embedded benchmark's words and those of `texts`."""
    from transformers import InstructBlipForConditionalGeneration

    from vila.data.synthqa import vocabulary
    from vila.models.presets import backbone_config
    from vila.models.tokenizer import build_word_tokenizer, word_vocabulary

    vocab = word_vocabulary(vocabulary() + fixture_words(texts))
    InstructBlipForConditionalGeneration(backbone_config("tiny", len(vocab))).save_pretrained(path)
    build_word_tokenizer(vocab).save_pretrained(path)
    build_word_tokenizer(vocab).save_pretrained(path / "qformer_tokenizer")
    return path


def unified_texts(items: list[dict[str, Any]]) -> list[str]:
    return [t for it in items for t in [it["question"], *(it[f"a{i}"] for i in range(it.get("num_option", 0)))]]


SPAN_TEXTS = ["What happened?", "Sat. Ate. Ran. Slept.", "What? 0 1 2 3 4"]  # test_questions_on_one_video_...


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny InstructBLIP for every fixture dataset: its tokenizer covers all their questions and options."""
    from vila.data.convert import convert

    root = tmp_path_factory.mktemp("words")
    texts = [r["query"] for r in MOMENTS] + SPAN_TEXTS
    for dataset in DATASETS:
        ann = root / dataset
        ann.mkdir()
        write_annotations(ann, dataset)
        convert(dataset, ann, root / f"{dataset}-unified")
        for split in ("train", "val"):
            texts += unified_texts(json.loads((root / f"{dataset}-unified" / f"{split}.json").read_text()))
    return save_tiny_instructblip(tmp_path_factory.mktemp("weights") / "instructblip-tiny", texts)


def make_dataset(root: Path, dataset: str, on_bad_video: str, weights: Path) -> None:
    raw = root / "data" / dataset
    (raw / "annotations").mkdir(parents=True)
    write_annotations(raw / "annotations", dataset)
    write_moments(root / "data")
    for slot, (size, _) in GOOD.items():
        path = video_file(raw, dataset, slot)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_clip(path, grey_clip(size), fps=FPS)
    bad = video_file(raw, dataset, "bad")
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    params = repo_params()
    params["dataset"] = dataset
    params["data"].update(on_bad_video=on_bad_video, frames=COUNT)
    params["model"].update(preset="tiny", weights=str(weights))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def expected_grid(span: tuple[float, float] | None) -> list[int]:
    """Middle source frame of each of COUNT equal intervals of [round(start fps), round(end fps)] (clamped)."""
    first, last = (0, N_FRAMES - 1) if span is None else (round(span[0] * FPS), min(N_FRAMES - 1, round(span[1] * FPS)))
    width = (last - first + 1) / COUNT
    return [first + math.floor((k + 0.5) * width) for k in range(COUNT)]


def role_slots(dataset: str, split: str) -> list[str]:
    """The fixture slots of a unified split's questions, in order (after `vila download`)."""
    slot_of = {video: slot for slot, video in IDS[dataset].items()}
    items = json.loads((Path("work") / dataset / "dataset" / "annotations" / f"{split}.json").read_text())
    return [slot_of[it["video"]] for it in items]


@pytest.mark.parametrize("dataset", DATASETS)
def test_download_and_preprocess_skip(dataset, tmp_path, monkeypatch, tiny_weights):
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path, dataset, "skip", tiny_weights)
    assert main(["--params", "params.yaml", "download"]) == 0
    dataset_dir, raw = Path("work") / dataset / "dataset", Path("data") / dataset
    ids = IDS[dataset]
    stats = json.loads((dataset_dir / "stats.json").read_text())
    official = splits_of(dataset)
    # the roles: test = the official split the papers report (val), val = whole videos carved out of official train
    assert role_slots(dataset, "test") == official["val"]
    train, val = role_slots(dataset, "train"), role_slots(dataset, "val")
    assert len(set(val)) == 1 and not set(val) & set(train)  # 10% of 3 videos: one, none of whose questions train
    assert sorted(train + val) == sorted(official["train"])
    assert stats["official"] == {"train": 4, "val": 3} and stats["validation"] == {"fraction": 0.1, "seed": 0}
    assert "carve-out" not in stats["roles"]["test"] and "official train" in stats["roles"]["val"]
    assert stats["tokenizer"]["language_model"]["unknown"] == stats["tokenizer"]["qformer"]["unknown"] == 0 and stats["questions"]["moments"] == len(MOMENTS)
    moments = json.loads((dataset_dir / "annotations" / "moments.json").read_text())
    assert [m["relevant_frames"] for m in moments] == [moment_frames(r) for r in MOMENTS]
    assert moments[0]["relevant_frames"][-1] == 27  # 8.5-8.6 s falls between frames 26 and 27: the nearest
    roles = {split: role_slots(dataset, split) for split in ("train", "val", "test")}
    for split, slots in roles.items():
        assert stats["questions"][split] == len(slots)
        assert stats["videos"][split] == {"referenced": len(set(slots)), "present": len(set(slots) - {"gone"})}

    assert main(["--params", "params.yaml", "preprocess"]) == 0
    frames_dir = Path("work") / dataset / "frames"
    skipped = json.loads((frames_dir / "skipped.json").read_text())
    decoding = json.loads((frames_dir / "decoding.json").read_text())
    assert skipped["counts"] == {**{split: len(set(slots) - set(GOOD)) for split, slots in roles.items()}, "moments": 0}
    for split, slots in roles.items():
        cache = np.load(frames_dir / f"{split}.npy")
        index = json.loads((frames_dir / f"{split}.index.json").read_text())
        items = json.loads((dataset_dir / "annotations" / f"{split}.json").read_text())
        key = {it["video"]: clip_id(it) for it in items}  # every fixture video has one span per split
        good = sorted({s for s in slots if s in GOOD}, key=lambda s: ids[s])
        assert cache.dtype == np.uint8 and cache.shape == (len(good), COUNT, SIZE, SIZE, 3)
        assert sorted(index.values()) == list(range(len(good))) and set(index) == {key[ids[s]] for s in good}
        for slot in good:
            clip = cache[index[key[ids[slot]]]].astype(int)
            assert np.ptp(clip, axis=(1, 2, 3)).max() <= 2, f"{split} {slot}: frames are not flat"
            got = clip.mean(axis=(1, 2, 3))
            want = 20 + 2 * np.array(expected_grid(span_of(dataset, slot)))
            assert np.abs(got - want).max() <= 1, f"{split} {ids[slot]}: grid frames {((got - 20) / 2).round()} != " \
                                                  f"{(want - 20) // 2}"
        for bad in sorted(set(slots) - set(GOOD)):
            path = str(video_file(raw, dataset, bad))
            reason = "cannot be decoded" if bad == "bad" else "video file not found"
            assert skipped[split][key[ids[bad]]].startswith(path) and reason in skipped[split][key[ids[bad]]]
        assert sum(decoding["clips"][split].values()) == len(good)
    moment_cache = np.load(frames_dir / "moments.npy")  # QVHighlights' clips, whole videos on the same grid
    assert moment_cache.shape == (len(MOMENTS), COUNT, SIZE, SIZE, 3)
    want = 20 + 2 * np.array(expected_grid(None))
    assert np.abs(moment_cache.astype(int).mean(axis=(2, 3, 4)) - want).max() <= 1
    assert decoding["decoder"] == "auto"


@pytest.mark.parametrize("dataset", DATASETS)
def test_preprocess_error_on_bad_video(dataset, tmp_path, monkeypatch, capsys, tiny_weights):
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path, dataset, "error", tiny_weights)
    assert main(["--params", "params.yaml", "download"]) == 0
    capsys.readouterr()
    assert main(["--params", "params.yaml", "preprocess"]) == 2
    err = capsys.readouterr().err
    # tqdm's progress bars (\r-redrawn, on stderr as for any user) are not messages; all else is one line
    lines = [kept for line in err.split("\n")
             if (kept := "".join(seg for seg in line.split("\r") if not PROGRESS.match(seg)))]
    assert len(lines) == 1, err
    first_bad = splits_of(dataset)["train"][2]  # the first unreadable video preprocess meets
    assert str(video_file(Path("data") / dataset, dataset, first_bad)) in lines[0]
    assert "data.on_bad_video" in lines[0]
    assert not (Path("work") / dataset / "frames").exists()
    assert not [p for p in (Path("work") / dataset).iterdir() if p.name.startswith(".frames")]


@pytest.mark.parametrize("dataset", ["star", "tvqa"])
def test_questions_on_one_video_keep_their_own_span(dataset, tmp_path, monkeypatch, tiny_weights):
    from vila.data.dataset import load_split
    from vila.paths import Paths

    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path, dataset, "skip", tiny_weights)
    spans, video = [(0.5, 3.0), (6.0, 9.5)], IDS[dataset]["a"]
    ann = Path("data") / dataset / "annotations"
    if dataset == "star":
        choices = [{"choice_id": i, "choice": c} for i, c in enumerate(["Sat.", "Ate.", "Ran.", "Slept."])]
        records = [{"question_id": f"Sequence_T1_{n}", "question": "What happened?", "video_id": video, "start": s,
                    "end": e, "answer": "Ate.", "choices": choices} for n, (s, e) in enumerate(spans)]
        (ann / "STAR_val.json").write_text(json.dumps(records))
    else:
        (ann / "tvqa_val.jsonl").write_text("".join(
            json.dumps({"vid_name": video, "qid": n, "q": "What?", **{f"a{i}": str(i) for i in range(5)},
                        "answer_idx": 1, "ts": f"{s:g}-{e:g}"}) + "\n" for n, (s, e) in enumerate(spans)))
    assert main(["--params", "params.yaml", "download"]) == 0
    assert main(["--params", "params.yaml", "preprocess"]) == 0
    qa = load_split(Paths(dataset), "test", frames=True)  # official val: the reported split
    for item, row in zip(qa.items, qa.rows, strict=True):
        got = qa.frames[row].astype(int).mean(axis=(1, 2, 3))
        want = 20 + 2 * np.array(expected_grid((item["start"], item["end"])))
        assert np.abs(got - want).max() <= 1, f"question {item['qid']} ({item['start']}-{item['end']} s)"


def test_a_tokenizer_that_misses_the_data_warns_and_one_that_merges_options_stops_download(tmp_path, caplog):
    """Before: the tiny model's word tokenizer turned STAR's words into <unk> ("the <unk>" for every option) and
    nothing said so."""
    from vila.data.real import tokenizer_coverage

    items = [{"qid": "q1", "question": "What did he take?", "num_option": 2, "a0": "The cup.", "a1": "The box."}]
    covered = save_tiny_instructblip(tmp_path / "covered", ["What did he take?", "The cup.", "The box."])
    assert tokenizer_coverage(str(covered), items)["language_model"]["unknown"] == 0
    partly = save_tiny_instructblip(tmp_path / "partly", ["What did he take?", "The cup."])  # "box" unknown
    with caplog.at_level("WARNING"):
        report = tokenizer_coverage(str(partly), [{**items[0], "a1": "The cup box."}])
    assert report["language_model"]["unknown_words"] == {"box.": 1} and "unknown to its language_model" in caplog.text
    with pytest.raises(ValueError, match=r"reads different options as the same tokens in 1 questions \(e.g. \['q1'\]"):
        tokenizer_coverage(str(partly), [{**items[0], "a0": "The bag."}])  # both options read "the <unk> ."
