"""`synthqa`: the embedded video-QA benchmark, generated deterministically from a seed.

Each clip has 32 frames. A question names one coloured object ("the red object"); the answer is
visible only in that object's 1-3 key frames. Distractor objects of other colours appear alone at
other times, so a selector that ignores the question can find "frames with something in them" but
not the right ones. Question types mirror STAR's four columns:

| type         | question                                         | key frames | answer       |
|--------------|--------------------------------------------------|------------|--------------|
| Interaction  | where did the red object appear ?                 | 1          | quadrant     |
| Sequence     | how many times did the red object flash ?         | 1-3        | count        |
| Prediction   | what shape was the red object ?                   | 1          | shape        |
| Feasibility  | which colour appeared together with the red object ? | 1       | partner colour |

Options: 4 per question; the answer position is balanced per type by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FRAMES = 32
TYPES = ("Interaction", "Sequence", "Prediction", "Feasibility")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 240),
    "yellow": (235, 225, 50),
    "cyan": (40, 220, 230),
    "magenta": (220, 50, 220),
    "white": (240, 240, 240),
    "orange": (245, 140, 30),
}
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
SHAPES = ("square", "ring", "horizontal bar", "vertical bar")
COUNTS = ("one", "two", "three", "four")
BACKGROUND = (24, 24, 28)
QUESTION = {
    "Interaction": "where did the {c} object appear ?",
    "Sequence": "how many times did the {c} object flash ?",
    "Prediction": "what shape was the {c} object ?",
    "Feasibility": "which colour appeared together with the {c} object ?",
}


@dataclass
class Obj:
    colour: str
    quadrant: int
    shape: int


@dataclass
class Clip:
    """A clip as a list of frames, each a list of objects, plus its question."""

    frames: list[list[Obj]]
    qtype: str
    question: str
    options: list[str]
    answer: int
    keyframes: list[int] = field(default_factory=list)


def render_frame(objs: list[Obj], size: int, rng: np.random.Generator) -> np.ndarray:
    img = np.empty((size, size, 3), np.uint8)
    img[:] = BACKGROUND
    q = size // 2
    box = max(4, round(0.625 * q))
    thick = max(2, box // 3)
    for o in objs:
        jy, jx = rng.integers(-1, 2, size=2)
        y0 = (o.quadrant // 2) * q + (q - box) // 2 + int(jy)
        x0 = (o.quadrant % 2) * q + (q - box) // 2 + int(jx)
        y0, x0 = int(np.clip(y0, 0, size - box)), int(np.clip(x0, 0, size - box))
        region = img[y0 : y0 + box, x0 : x0 + box]
        colour = COLOURS[o.colour]
        if SHAPES[o.shape] == "square":
            region[:] = colour
        elif SHAPES[o.shape] == "ring":
            region[:thick], region[-thick:], region[:, :thick], region[:, -thick:] = colour, colour, colour, colour
        elif SHAPES[o.shape] == "horizontal bar":
            mid = (box - thick) // 2
            region[mid : mid + thick] = colour
        else:
            mid = (box - thick) // 2
            region[:, mid : mid + thick] = colour
    return img


def render_clip(clip: Clip, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([render_frame(objs, size, rng) for objs in clip.frames])


def _options(correct: str, pool: list[str], answer_pos: int, rng: np.random.Generator) -> list[str]:
    others = [x for x in pool if x != correct]
    rng.shuffle(others)
    opts = others[:3]
    opts.insert(answer_pos, correct)
    return opts


def _free_frames(n: int, taken: set[int], count: int, rng: np.random.Generator, gap: int = 1) -> list[int]:
    """`count` distinct frames not in `taken` and at least `gap` apart from each other."""
    for _ in range(1000):
        cand = sorted(rng.choice([t for t in range(n) if t not in taken], size=count, replace=False).tolist())
        if all(b - a >= gap for a, b in zip(cand, cand[1:], strict=False)):
            return cand
    raise RuntimeError("could not place events; too many for the clip length")


def make_clip(qtype: str, answer_pos: int, n_frames: int, distractors: int, rng: np.random.Generator) -> Clip:
    colours = list(COLOURS)
    target = colours[rng.integers(len(colours))]
    frames: list[list[Obj]] = [[] for _ in range(n_frames)]
    others = [c for c in colours if c != target]
    rng.shuffle(others)

    def obj(colour: str, avoid: int | None = None) -> Obj:
        quads = [q for q in range(4) if q != avoid]
        return Obj(colour, int(rng.choice(quads)), int(rng.integers(len(SHAPES))))

    if qtype == "Sequence":
        n_flash = int(rng.integers(1, 4)) if n_frames >= 5 else int(rng.integers(1, min(3, n_frames) + 1))
        keys = _free_frames(n_frames, set(), n_flash, rng, gap=2 if n_frames >= 8 else 1)
        for t in keys:
            frames[t].append(obj(target))
        options = _options(COUNTS[n_flash - 1], list(COUNTS), answer_pos, rng)
    else:
        keys = _free_frames(n_frames, set(), 1, rng)
        o = obj(target)
        frames[keys[0]].append(o)
        if qtype == "Interaction":
            options = _options(QUADRANTS[o.quadrant], list(QUADRANTS), answer_pos, rng)
        elif qtype == "Prediction":
            options = _options(SHAPES[o.shape], list(SHAPES), answer_pos, rng)
        else:  # Feasibility: a partner object shares the key frame; wrong options appear elsewhere
            partner = others.pop()
            frames[keys[0]].append(obj(partner, avoid=o.quadrant))
            options = [others[i] for i in range(3)]
            options.insert(answer_pos, partner)
    # Distractors: other colours, alone, at other times. For Feasibility they are exactly the wrong
    # options, so every option colour is in the clip and only co-occurrence decides.
    free = n_frames - len(keys)
    n_distract = min(distractors, free)
    if qtype == "Feasibility":
        distract_colours = [c for c in options if c != options[answer_pos]][:n_distract]
    else:
        distract_colours = others[:n_distract]
    times = _free_frames(n_frames, set(keys), len(distract_colours), rng) if distract_colours else []
    for t, colour in zip(times, distract_colours, strict=True):
        frames[t].append(obj(colour))
    question = QUESTION[qtype].format(c=target)
    return Clip(frames, qtype, question, options, answer_pos, keys)


def uniform_eval_indices(n_frames: int, count: int) -> list[int]:
    """Middle frame of each of `count` equal intervals (evaluation-time uniform sampling)."""
    return [int((i + 0.5) * n_frames / count) for i in range(count)]


def keyframe_recall(keyframes: list[int], chosen: list[int]) -> float:
    """Fraction of a question's key frames among the chosen frames."""
    return len(set(keyframes) & set(chosen)) / len(keyframes)


def segment_reachable(keyframes: list[int], n_frames: int, segments: int) -> bool:
    """Whether one-frame-per-segment selection can pick all key frames."""
    seg = [t * segments // n_frames for t in keyframes]
    return len(set(seg)) == len(seg)


def generate_split(name: str, count: int, seed: int, distractors: int) -> list[Clip]:
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    clips = []
    for i in range(count):
        qtype = TYPES[i % 4]
        answer_pos = (i // 4) % 4
        clips.append(make_clip(qtype, answer_pos, FRAMES, distractors, rng))
    order = rng.permutation(count)
    return [clips[j] for j in order]


def unified_item(clip: Clip, split: str, index: int) -> dict[str, Any]:
    video = f"{split}_{index:05d}"
    item: dict[str, Any] = {
        "video": video,
        "qid": f"{clip.qtype}_{video}",
        "question": clip.question,
        "num_option": len(clip.options),
        "answer": clip.answer,
        "type": clip.qtype,
        "keyframes": clip.keyframes,
    }
    for j, option in enumerate(clip.options):
        item[f"a{j}"] = option
    return item


def split_stats(items: list[dict[str, Any]], n_frames: int = FRAMES, select: int = 4) -> dict[str, Any]:
    uniform = uniform_eval_indices(n_frames, select)
    coverage = [keyframe_recall(it["keyframes"], uniform) for it in items]
    reachable = [segment_reachable(it["keyframes"], n_frames, select) for it in items]
    answers = np.bincount([it["answer"] for it in items], minlength=4)
    types = {t: sum(it["type"] == t for it in items) for t in TYPES}
    nkeys = np.bincount([len(it["keyframes"]) for it in items], minlength=4)
    return {
        "questions": len(items),
        "uniform4_keyframe_coverage": float(np.mean(coverage)),
        "segment_reachable_fraction": float(np.mean(reachable)),
        "answer_position_fraction": {"ABCD"[i]: float(answers[i] / len(items)) for i in range(4)},
        "type_counts": types,
        "keyframes_per_question": {str(k): int(nkeys[k]) for k in range(1, 4)},
        "uniform4_indices": uniform,
    }


# Image-set pretraining data for the embedded backbone: the same renderer and question kinds over
# sets of 1-4 frames, so the backbone is a pretrained image-language model before any video training.
def pretraining_batch(
    batch: int, size: int, rng: np.random.Generator, max_frames: int = 4
) -> tuple[list[np.ndarray], list[Clip]]:
    frames, clips = [], []
    for _ in range(batch):
        n = int(rng.integers(1, max_frames + 1))
        qtype = TYPES[int(rng.integers(4))]
        clip = make_clip(qtype, int(rng.integers(4)), n, distractors=int(rng.integers(0, n)), rng=rng)
        clips.append(clip)
        frames.append(render_clip(clip, size, rng))
    return frames, clips
