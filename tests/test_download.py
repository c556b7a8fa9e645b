"""The benchmark's content is verified, not assumed: download checks every written clip against the frames
it rendered, and records checksums of both."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import ROOT, smoke_params
from vila.data import download
from vila.data.video import Decoded, VideoError
from vila.paths import Paths

# The smoke profile's rendered frames, per split: pure numpy, so the same on every machine and numpy 2.x.
RENDERED = json.loads((ROOT / "tests" / "data" / "smoke_rendered_sha256.json").read_text())


def test_download_records_rendered_and_decoded_checksums(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = smoke_params()
    download.run(params)
    dataset = Paths.from_params(params).dataset_dir
    stats = json.loads((dataset / "stats.json").read_text())
    clips = json.loads((dataset / "checksums.json").read_text())
    for split, n in params["data"]["synthqa"]["questions"].items():
        c = stats["checksums"][split]
        assert c["rendered_frames_sha256"] == RENDERED[split]
        assert c["min_psnr_db"] >= download.MIN_CLIP_PSNR_DB and sum(c["decoded_by"].values()) == n
        assert sum(v.startswith(split) for v in clips) == n
    assert all(set(c) == {"rendered_sha256", "decoded_sha256", "psnr_db", "decoder"} for c in clips.values())


def _decode_as(transform):
    real = download.decode_grid

    def decode(path, count, *args, **kwargs):
        got = real(path, count, *args, **kwargs)
        return Decoded(transform(got.frames), got.decoder)

    return decode


@pytest.mark.parametrize(("transform", "message"), [
    (lambda f: np.roll(f, 1, axis=0), r"decoded frame \d+ is closer to rendered frame"),  # one frame off
    (lambda f: f ^ 12, r"dB PSNR, below the 45.0 dB"),  # every pixel off by up to 12 levels
], ids=["shifted", "noisy"])
def test_a_clip_that_does_not_reproduce_its_frames_fails_download_naming_it(tmp_path, monkeypatch, transform, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(download, "decode_grid", _decode_as(transform))
    params = smoke_params()
    with pytest.raises(VideoError, match=rf"train_00000\.mp4: .*{message}"):
        download.run(params)
    assert not Paths.from_params(params).dataset_dir.exists(), "a failed download left its output behind"
