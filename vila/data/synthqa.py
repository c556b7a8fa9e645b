"""`synthqa`: the embedded video-QA benchmark, generated deterministically from a seed.

Each clip has 32 frames. A question names one coloured object ("the red object"); the answer is
visible only in that object's key frames (1 or 2). Distractor objects of other colours appear alone
at other times, so a selector that ignores the question can find "frames with something in them"
but not the right ones. Question types mirror STAR's four columns:

| type         | question                                              | key frames | answer           |
|--------------|-------------------------------------------------------|------------|------------------|
| Interaction  | where did the red object appear ?                      | 1          | quadrant         |
| Sequence     | where did the red object appear first ?                | 2          | earlier quadrant |
| Prediction   | what shape was the red object ?                        | 1          | shape            |
| Feasibility  | which colour appeared together with the red object ?   | 1          | partner colour   |

Options: 4 per question, the type's whole answer set in a fixed order (so the answer position is the
answer value, and balanced by sampling values uniformly). Feasibility names a target from one colour
group and asks for a partner from the other; the other partner colours appear alone elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vila.data.sampling import uniform_indices

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
BACKGROUND = (24, 24, 28)
TARGETS = ("red", "green", "blue", "yellow")  # Feasibility: targets from this group ...
PARTNERS = ("cyan", "magenta", "white", "orange")  # ... partners (and its options) from this one
QUESTION = {
    "Interaction": "where did the {c} object appear ?",
    "Sequence": "where did the {c} object appear first ?",
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
    target: str = ""


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


def _free_frames(n: int, taken: set[int], count: int, rng: np.random.Generator) -> list[int]:
    """`count` distinct frames, not in `taken`, in increasing order."""
    free = [t for t in range(n) if t not in taken]
    return sorted(rng.choice(free, size=count, replace=False).tolist())


def make_clip(qtype: str, answer_pos: int, n_frames: int, distractors: int, rng: np.random.Generator) -> Clip:
    """One clip whose answer is option `answer_pos`."""
    frames: list[list[Obj]] = [[] for _ in range(n_frames)]

    def shape() -> int:
        return int(rng.integers(len(SHAPES)))

    if qtype == "Feasibility":
        target = TARGETS[rng.integers(len(TARGETS))]
        options = list(PARTNERS)
        keys = _free_frames(n_frames, set(), 1, rng)
        q1, q2 = rng.choice(4, size=2, replace=False).tolist()
        frames[keys[0]] += [Obj(target, q1, shape()), Obj(PARTNERS[answer_pos], q2, shape())]
        # every other option colour is in the clip too, alone: only co-occurrence decides
        distract = [c for c in PARTNERS if c != PARTNERS[answer_pos]]
    else:
        target = list(COLOURS)[rng.integers(len(COLOURS))]
        others = [c for c in COLOURS if c != target]
        rng.shuffle(others)
        distract = others
        if qtype == "Sequence":
            keys = _free_frames(n_frames, set(), 2, rng)
            later = int(rng.choice([q for q in range(4) if q != answer_pos]))
            frames[keys[0]].append(Obj(target, answer_pos, shape()))
            frames[keys[1]].append(Obj(target, later, shape()))
            options = list(QUADRANTS)
        else:
            keys = _free_frames(n_frames, set(), 1, rng)
            if qtype == "Interaction":
                frames[keys[0]].append(Obj(target, answer_pos, shape()))
                options = list(QUADRANTS)
            else:  # Prediction
                frames[keys[0]].append(Obj(target, int(rng.integers(4)), answer_pos))
                options = list(SHAPES)
    n_distract = min(distractors, n_frames - len(keys), len(distract))
    times = _free_frames(n_frames, set(keys), n_distract, rng)
    order = rng.permutation(len(distract))[:n_distract]
    for t, j in zip(times, order, strict=True):
        frames[t].append(Obj(distract[j], int(rng.integers(4)), shape()))
    question = QUESTION[qtype].format(c=target)
    return Clip(frames, qtype, question, options, answer_pos, keys, target)


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
    uniform = uniform_indices(n_frames, select, None, 1)[0].tolist()
    coverage = [keyframe_recall(it["keyframes"], uniform) for it in items]
    reachable = [segment_reachable(it["keyframes"], n_frames, select) for it in items]
    answers = np.bincount([it["answer"] for it in items], minlength=4)
    types = {t: sum(it["type"] == t for it in items) for t in TYPES}
    nkeys = np.bincount([len(it["keyframes"]) for it in items], minlength=3)
    return {
        "questions": len(items),
        "uniform4_keyframe_coverage": float(np.mean(coverage)),
        "segment_reachable_fraction": float(np.mean(reachable)),
        "answer_position_fraction": {"ABCD"[i]: float(answers[i] / len(items)) for i in range(4)},
        "type_counts": types,
        "keyframes_per_question": {str(k): int(nkeys[k]) for k in range(1, len(nkeys)) if nkeys[k]},
        "uniform4_indices": uniform,
    }


def frame_labels(clip: Clip) -> dict[str, np.ndarray]:
    """Per-frame supervision for backbone pretraining, from the generator's object lists.

    grounding (about the object the question names): quadrant+1 (0 = absent), shape (4 = absent),
    colour+1 of an object beside it (0 = none); description: colour+1 and shape of every quadrant.
    """
    colours = list(COLOURS)
    t = len(clip.frames)
    out = {
        "quadrant": np.zeros(t, np.int64), "shape": np.full(t, len(SHAPES), np.int64), "partner": np.zeros(t, np.int64),
        "quad_colour": np.zeros((t, 4), np.int64), "quad_shape": np.full((t, 4), len(SHAPES), np.int64),
    }
    for i, objs in enumerate(clip.frames):
        for o in objs:
            out["quad_colour"][i, o.quadrant] = colours.index(o.colour) + 1
            out["quad_shape"][i, o.quadrant] = o.shape
            if o.colour == clip.target:
                out["quadrant"][i], out["shape"][i] = o.quadrant + 1, o.shape
                beside = [x for x in objs if x.colour != clip.target]
                if beside:
                    out["partner"][i] = colours.index(beside[0].colour) + 1
    return out


# Image-set pretraining data for the embedded backbone: the same renderer and question kinds over
# sets of 1-4 frames, so the backbone is a pretrained image-language model before any video training.
def pretraining_batch(
    batch: int, size: int, rng: np.random.Generator, max_frames: int = 4
) -> tuple[list[np.ndarray], list[Clip]]:
    frames, clips = [], []
    for _ in range(batch):
        qtype = TYPES[int(rng.integers(4))]
        n = int(rng.integers(2 if qtype == "Sequence" else 1, max_frames + 1))
        clip = make_clip(qtype, int(rng.integers(4)), n, distractors=int(rng.integers(0, n)), rng=rng)
        clips.append(clip)
        frames.append(render_clip(clip, size, rng))
    return frames, clips


def vocabulary() -> list[str]:
    """Every word the benchmark's prompts, questions and options use, split as a whitespace word-level
    tokenizer splits them (the embedded model's vocabulary)."""
    from tokenizers.pre_tokenizers import Whitespace

    from vila.data import prompts

    texts = [prompts.MC_SUFFIX, prompts.VLEP_QUESTION, "Question: Option", *(q.format(c="red") for q in QUESTION.values()),
             *QUADRANTS, *SHAPES, prompts.LOCALIZER_SUFFIX, prompts.LOCALIZER_MARK, prompts.YES, prompts.NO,
             *(prompts.frame_mark(i) for i in range(1, 33))]
    words = [w for text in texts for w, _ in Whitespace().pre_tokenize_str(text.lower())]
    return [*words, *COLOURS, "object", "objects", "is", "are", "there", "in", "a", "an", "and"]
