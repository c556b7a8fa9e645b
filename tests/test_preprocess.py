"""The decode cache: bad videos are an error that names them, or a counted, listed skip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import smoke_params
from vila.data import download, preprocess
from vila.data.video import VideoError
from vila.paths import Paths


@pytest.fixture()
def dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = smoke_params()
    download.run(params)
    bad = Paths.from_params(params).dataset_dir / "videos" / "train_00003.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 20)
    return params


def test_bad_video_is_an_error_naming_it(dataset):
    with pytest.raises(VideoError, match=r"train_00003\.mp4.*data\.on_bad_video"):
        preprocess.run(dataset)
    assert not Paths.from_params(dataset).frames_dir.exists(), "an interrupted stage left its output behind"


def test_bad_video_skip_is_counted_and_listed(dataset):
    dataset["data"]["on_bad_video"] = "skip"
    preprocess.run(dataset)
    frames = Paths.from_params(dataset).frames_dir
    skipped = json.loads((frames / "skipped.json").read_text())
    assert list(skipped["train"]) == ["train_00003"] and skipped["counts"]["train"] == 1
    cache = np.load(frames / "train.npy", mmap_mode="r")
    index = json.loads((frames / "train.index.json").read_text())
    assert cache.shape[0] == len(index) == 11 and "train_00003" not in index
    from vila.data.dataset import load_split

    qa = load_split(Paths.from_params(dataset), "train", frames=True)
    assert len(qa) == 11 and all(it["video"] != "train_00003" for it in qa.items)


def test_decoding_in_worker_processes_gives_the_same_cache(dataset, tmp_path):
    """data.workers decodes clips in DataLoader workers: same bytes, same index, same skip list."""
    dataset["data"]["on_bad_video"] = "skip"
    frames = Paths.from_params(dataset).frames_dir
    caches = {}
    for workers in (0, 2):
        dataset["data"]["workers"] = workers
        preprocess.run(dataset)
        caches[workers] = {p.name: p.read_bytes() for p in sorted(frames.iterdir())}
    assert caches[0] == caches[2]


def test_bad_video_in_a_worker_is_still_an_error_naming_it(dataset):
    dataset["data"]["workers"] = 2
    with pytest.raises(VideoError, match=r"train_00003\.mp4.*data\.on_bad_video"):
        preprocess.run(dataset)
