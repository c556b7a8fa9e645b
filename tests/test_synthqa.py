import json

import numpy as np

from vila.data import synthqa
from vila.data.video import VideoError, decode_grid, write_clip


def items(split="train", n=400, seed=0):
    return [synthqa.unified_item(c, split, i) for i, c in enumerate(synthqa.generate_split(split, n, seed, 3))]


def test_generator_is_deterministic():
    assert json.dumps(items(seed=3)) == json.dumps(items(seed=3))
    assert json.dumps(items(seed=3)) != json.dumps(items(seed=4))


def test_stats_make_selection_matter():
    stats = synthqa.split_stats(items(n=800))
    assert stats["uniform4_keyframe_coverage"] <= 0.35
    assert all(abs(v - 0.25) < 0.02 for v in stats["answer_position_fraction"].values())
    assert set(stats["type_counts"]) == set(synthqa.TYPES)
    assert 0.0 < stats["segment_reachable_fraction"] < 1.0  # two key frames in one segment happen


def test_question_names_an_object_only_its_key_frames_show():
    rng = np.random.default_rng(0)
    for qtype in synthqa.TYPES:
        for pos in range(4):
            clip = synthqa.make_clip(qtype, pos, 32, 3, rng)
            assert clip.target in clip.question
            shown = [t for t, objs in enumerate(clip.frames) if any(o.colour == clip.target for o in objs)]
            assert shown == clip.keyframes
            others = [t for t, objs in enumerate(clip.frames) if objs and t not in clip.keyframes]
            assert len(others) == 3  # distractor events at other times
            assert clip.options[clip.answer] and len(clip.options) == 4 and clip.answer == pos


def test_answer_is_what_the_key_frame_shows():
    rng = np.random.default_rng(1)
    clip = synthqa.make_clip("Interaction", 2, 32, 3, rng)
    obj = next(o for o in clip.frames[clip.keyframes[0]] if o.colour == clip.target)
    assert synthqa.QUADRANTS[obj.quadrant] == clip.options[clip.answer]
    clip = synthqa.make_clip("Sequence", 1, 32, 3, rng)
    first = next(o for o in clip.frames[clip.keyframes[0]] if o.colour == clip.target)
    assert synthqa.QUADRANTS[first.quadrant] == clip.options[clip.answer]


def test_video_roundtrip_keeps_colours(tmp_path):
    rng = np.random.default_rng(0)
    clip = synthqa.make_clip("Prediction", 0, 32, 3, rng)
    frames = synthqa.render_clip(clip, 32, rng)
    write_clip(tmp_path / "c.mp4", frames)
    back = decode_grid(tmp_path / "c.mp4", 32).frames
    assert back.shape == frames.shape
    k = clip.keyframes[0]
    obj = next(o for o in clip.frames[k] if o.colour == clip.target)
    cy, cx = (obj.quadrant // 2) * 16 + 8, (obj.quadrant % 2) * 16 + 8  # region centre: square is filled
    assert np.abs(back[k, cy, cx].astype(int) - np.array(synthqa.COLOURS[clip.target])).max() < 40


def test_bad_videos_are_named(tmp_path):
    import pytest

    with pytest.raises(VideoError, match="not found"):
        decode_grid(tmp_path / "missing.mp4", 32)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        decode_grid(tmp_path / "empty.mp4", 32)
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(VideoError, match="corrupt.mp4"):
        decode_grid(tmp_path / "corrupt.mp4", 32)
    write_clip(tmp_path / "short.mp4", np.zeros((8, 32, 32, 3), np.uint8))
    with pytest.raises(VideoError, match="fewer than the 32"):
        decode_grid(tmp_path / "short.mp4", 32)
