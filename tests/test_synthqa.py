"""synthqa v2's invariants, checked on every split's generator (vila/data/synthqa.py, docs/benchmark.md)."""

import json

import numpy as np
import pytest

from vila.data import synthqa
from vila.data.video import VideoError, decode_grid, write_clip

SPLITS = {"train": 1, "val": 2, "test": 917}  # params.yaml's split seeds


def clips(split="train", n=200, seed=None):
    return synthqa.generate_split(split, n, SPLITS[split] if seed is None else seed)


def items(split="train", n=200, seed=None):
    return [synthqa.unified_item(c, split, i) for i, c in enumerate(clips(split, n, seed))]


def test_generator_is_deterministic_and_each_split_its_own():
    assert json.dumps(items(seed=3)) == json.dumps(items(seed=3))
    assert json.dumps(items(seed=3)) != json.dumps(items(seed=4))
    assert json.dumps(items("train", seed=5)) != json.dumps(items("val", seed=5))  # the split's name seeds it too


@pytest.mark.parametrize("split", list(SPLITS))
def test_every_frame_shows_a_scene_and_only_the_key_shots_show_the_named_object(split):
    for clip in clips(split, 120):
        frames = clip.frames
        assert len(frames) == synthqa.FRAMES
        assert all(len(objs) == synthqa.OBJECTS_PER_SHOT for objs in frames)  # every frame: three objects
        assert all(len({o.quadrant for o in objs}) == len(objs) for objs in frames)
        assert all(len({o.colour for o in objs}) == len(objs) for objs in frames)
        shown = [t for t, objs in enumerate(frames) if any(o.colour == clip.target for o in objs)]
        assert shown == clip.keyframes  # the answer is visible in the key frames only
        assert clip.target in clip.question
        assert len(clip.key_events) == (2 if clip.qtype == "Sequence" else 1)
        assert all(1 <= len(e) <= max(synthqa.SHOT_LENGTHS) for e in clip.key_events)


@pytest.mark.parametrize("split", list(SPLITS))
def test_the_answer_is_what_the_key_shots_show(split):
    for clip in clips(split, 120):
        first = clip.key_events[0][0]
        target = next(o for o in clip.frames[first] if o.colour == clip.target)
        right = clip.options[clip.answer]
        if clip.qtype in ("Interaction", "Sequence"):  # Sequence: the earlier of the two appearances
            assert synthqa.QUADRANTS[target.quadrant] == right
        elif clip.qtype == "Prediction":
            assert synthqa.SHAPES[target.shape] == right
        else:
            partners = [o.colour for o in clip.frames[first] if o.colour in synthqa.PARTNERS]
            assert partners == [right]
        if clip.qtype == "Sequence":  # the later appearance is elsewhere, so the order decides
            later = next(o for o in clip.frames[clip.key_events[1][0]] if o.colour == clip.target)
            assert later.quadrant != target.quadrant
            assert clip.key_events[1][0] > clip.key_events[0][-1] + 1  # two separate shots


def test_feasibility_partners_appear_equally_often_so_only_co_occurrence_decides():
    for clip in [c for c in clips("val", 200) if c.qtype == "Feasibility"]:
        counts = {p: sum(any(o.colour == p for o in shot.objects) for shot in clip.shots) for p in synthqa.PARTNERS}
        assert set(counts.values()) == {synthqa.PARTNER_SHOTS}


def test_answers_and_types_are_balanced():
    stats = synthqa.split_stats(items("val", 400))
    assert all(v == 0.25 for v in stats["answer_position_fraction"].values())
    assert set(stats["type_counts"].values()) == {100}
    assert 0.2 < stats["uniform4_event_coverage"] < 0.45  # uniform-4 sees a key shot about a third of the time


def test_question_blind_statistics_carry_no_key_frame_signal():
    """On 800 clips, the top-k of every question-blind statistic finds key shots no more often than
    uniform sampling (within 0.05), and ranks key frames at chance (AUC near 0.5): nothing but the question points
    to them. A shot detector's cue (frame difference) picks shot starts, so it counts a 1-frame key shot whole: its
    per-frame recall runs about 0.04 above uniform's (1/8 for any selector of 4 that ignores the key frames), its
    key-shot recall does not."""
    rng = np.random.default_rng(0)
    cs = clips("val", 800)  # per-frame recall's standard error here is about 0.01
    stats = [synthqa.blind_statistics(synthqa.render_clip(c, 32, rng)) for c in cs]
    recall = synthqa.blind_selection_recall([synthqa.unified_item(c, "val", i) for i, c in enumerate(cs)], stats,
                                            (2, 4), seed=0)
    for k in ("2f", "4f"):
        uniform = recall["uniform"][k]
        for name in synthqa.BLIND_STATISTICS:
            assert recall[name][k]["event"]["all"] <= uniform["event"]["all"] + 0.05, (name, k)
            assert abs(recall[name][k]["keyframe"]["all"] - uniform["keyframe"]["all"]) <= 0.05, (name, k)
        assert abs(recall["random"][k]["event"]["all"] - uniform["event"]["all"]) <= 0.05
    for name in synthqa.BLIND_STATISTICS:
        assert abs(recall[name]["auc"]["all"] - 0.5) < 0.07, name


def test_pretraining_sets_hold_every_key_shot_in_time_order():
    rng = np.random.default_rng(3)
    for fs in synthqa.pretraining_batch(64, 32, rng, max_frames=6):
        assert fs.frame_ids == sorted(set(fs.frame_ids)) and 1 <= len(fs.frame_ids) <= 6
        assert all(set(fs.frame_ids) & set(e) for e in fs.clip.key_events)
        assert fs.pixels.shape == (len(fs.frame_ids), 32, 32, 3)


def test_moment_labels_agree_with_the_rendered_frames():
    """The moment-retrieval labels (SeViLA's Localizer pre-training) mark exactly the frames whose pixels show the
    queried colour (with the other one, for a two-colour query)."""
    rng = np.random.default_rng(0)
    for i, clip in enumerate(synthqa.generate_moments(40, seed=4)):
        item = synthqa.moment_item(clip, i)
        pixels = synthqa.render_frames(clip.frames, 32, rng)
        named = [c for c in synthqa.COLOURS if f"the {c} object" in item["question"]]
        assert len(named) in (1, 2)
        shows = [all((np.abs(f.astype(int) - synthqa.COLOURS[c]).max(-1) < 8).sum() >= 8 for c in named) for f in pixels]
        assert [t for t, s in enumerate(shows) if s] == item["relevant_frames"]
        assert item["relevant_frames"] and item["num_option"] == 0


def test_video_roundtrip_keeps_the_key_frame_colours(tmp_path):
    rng = np.random.default_rng(0)
    clip = synthqa.make_clip("Prediction", 0, rng)
    frames = synthqa.render_clip(clip, 32, rng)
    write_clip(tmp_path / "c.mp4", frames)
    back = decode_grid(tmp_path / "c.mp4", 32).frames
    assert back.shape == frames.shape
    k = clip.keyframes[0]
    obj = next(o for o in clip.frames[k] if o.colour == clip.target)
    cy, cx = (obj.quadrant // 2) * 16 + 8, (obj.quadrant % 2) * 16 + 8  # region centre: square is filled
    assert np.abs(back[k, cy, cx].astype(int) - np.array(synthqa.COLOURS[clip.target])).max() < 8


def test_bad_videos_are_named(tmp_path):
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
