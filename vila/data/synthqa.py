"""`synthqa` v2: the embedded video-QA benchmark, generated deterministically from a seed per split.

A clip is 32 frames cut into shots of 1-4 frames (the cuts of edited footage). Every shot shows three objects
in three of the four quadrants of the frame: every frame holds a scene, and no frame holds more or fewer objects
than another. A question names one coloured object ("the red object"); that colour appears only in the question's
key shot(s), so the answer is visible in those few frames and nowhere else. Question types mirror STAR's four:

| type         | question                                              | key shots | answer                  |
|--------------|-------------------------------------------------------|-----------|-------------------------|
| Interaction  | where did the red object appear ?                      | 1         | quadrant                |
| Sequence     | where did the red object appear first ?                | 2         | the earlier shot's quadrant |
| Prediction   | what shape was the red object ?                        | 1         | shape                   |
| Feasibility  | which colour appeared together with the red object ?   | 1         | partner colour          |

Why this makes a frame-selection benchmark (docs/benchmark.md has the measurements):
- nothing that ignores the question singles out the key frames: every frame has three objects, every shot starts
  with a cut (the frame difference is large at every cut, not at the key shot's), the colours are drawn alike;
- uniform sampling is a real baseline: a key shot of d frames is seen by uniform-k sampling with probability about
  d k / 32, so accuracy rises with k (2 < 4 < 8 < 16 < 32 frames);
- Sequence needs the order of two shots: the red object is seen twice, in two quadrants; which came first decides.

Options: 4 per question, the type's whole answer set in a fixed order (so the answer position is the answer
value, balanced by cycling it). Feasibility names a target from one colour group (TARGETS) and asks for a partner
from the other (PARTNERS); every partner colour appears in exactly two shots of the clip (the answer's once with the
target, once elsewhere), so only co-occurrence decides, never frequency.

The moment-retrieval set (SeViLA's Localizer pre-training stands in for QVHighlights) uses the same shots: a query
names one colour, or two colours together, and every frame is labelled relevant when it shows what the query names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vila.data.metrics import STAR_TYPES
from vila.data.sampling import uniform_indices

GENERATOR_VERSION = 2
FRAMES = 32
SHOT_LENGTHS = (1, 2, 3, 4)  # frames per shot, drawn uniformly
OBJECTS_PER_SHOT = 3  # of 4 quadrants
TYPES = STAR_TYPES  # synthqa mirrors STAR's four question types
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
PARTNER_SHOTS = 2  # Feasibility: shots each partner colour appears in
QUESTION = {
    "Interaction": "where did the {c} object appear ?",
    "Sequence": "where did the {c} object appear first ?",
    "Prediction": "what shape was the {c} object ?",
    "Feasibility": "which colour appeared together with the {c} object ?",
}
MOMENT_QUERY = {1: "the {c} object", 2: "the {c} object together with the {d} object"}


@dataclass
class Obj:
    colour: str
    quadrant: int
    shape: int


@dataclass
class Shot:
    start: int
    length: int
    objects: list[Obj]

    @property
    def frames(self) -> list[int]:
        return list(range(self.start, self.start + self.length))


@dataclass
class Clip:
    """A clip as shots of objects, plus its question (answer, key shots, the colour it names)."""

    shots: list[Shot]
    qtype: str
    question: str
    options: list[str]
    answer: int
    key_shots: list[int]
    target: str

    @property
    def frames(self) -> list[list[Obj]]:
        """The objects of every frame, in time order."""
        return [shot.objects for shot in self.shots for _ in range(shot.length)]

    @property
    def key_events(self) -> list[list[int]]:
        """The frames of each key shot: where the answer can be seen (Sequence: both appearances)."""
        return [self.shots[s].frames for s in self.key_shots]

    @property
    def keyframes(self) -> list[int]:
        return [t for event in self.key_events for t in event]


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


def render_frames(frames: list[list[Obj]], size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [len(frames), size, size, 3]; every object jitters by up to a pixel from frame to frame."""
    return np.stack([render_frame(objs, size, rng) for objs in frames])


def render_clip(clip: Clip, size: int, rng: np.random.Generator) -> np.ndarray:
    return render_frames(clip.frames, size, rng)


def shot_lengths(n_frames: int, rng: np.random.Generator) -> list[int]:
    """Lengths drawn from SHOT_LENGTHS until they cover n_frames (the last one cut to fit)."""
    lengths: list[int] = []
    while sum(lengths) < n_frames:
        lengths.append(int(rng.choice(SHOT_LENGTHS)))
    lengths[-1] -= sum(lengths) - n_frames
    return lengths


def shot_objects(colours: list[str], rng: np.random.Generator, fixed: dict[str, tuple[int | None, int | None]]
                 | None = None) -> list[Obj]:
    """Objects of the given colours in distinct random quadrants with random shapes; `fixed` colour -> (quadrant,
    shape), either None for random."""
    fixed = fixed or {}
    wanted = {c: q for c, (q, _) in fixed.items() if q is not None}
    free = [q for q in rng.permutation(4).tolist() if q not in wanted.values()]
    objs = []
    for c in colours:
        quadrant = wanted[c] if c in wanted else free.pop()
        shape = fixed.get(c, (None, None))[1]
        objs.append(Obj(c, quadrant, int(rng.integers(len(SHAPES))) if shape is None else shape))
    return objs


def pick_key_shots(n_shots: int, count: int, rng: np.random.Generator) -> list[int]:
    """`count` shot indices in increasing order; two key shots are never adjacent (two separate appearances)."""
    while True:
        keys = sorted(rng.choice(n_shots, size=count, replace=False).tolist())
        if count == 1 or keys[1] - keys[0] >= 2:
            return keys


def make_clip(qtype: str, answer_pos: int, rng: np.random.Generator, n_frames: int = FRAMES) -> Clip:
    """One clip whose answer is option `answer_pos`."""
    lengths = shot_lengths(n_frames, rng)
    starts = np.cumsum([0, *lengths[:-1]]).tolist()
    n_shots = len(lengths)
    if qtype == "Feasibility":
        target = TARGETS[int(rng.integers(len(TARGETS)))]
        options = list(PARTNERS)
        keys = pick_key_shots(n_shots, 1, rng)
        colours = feasibility_colours(n_shots, keys[0], target, PARTNERS[answer_pos], rng)
        objects = [shot_objects(c, rng) for c in colours]
    else:
        target = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        others = [c for c in COLOURS if c != target]
        keys = pick_key_shots(n_shots, 2 if qtype == "Sequence" else 1, rng)
        objects = [shot_objects(rng.choice(others, OBJECTS_PER_SHOT, replace=False).tolist(), rng)
                   for _ in range(n_shots)]
        if qtype == "Sequence":
            later = int(rng.choice([q for q in range(4) if q != answer_pos]))
            placements = [(answer_pos, None), (later, None)]
            options = list(QUADRANTS)
        elif qtype == "Interaction":
            placements, options = [(answer_pos, None)], list(QUADRANTS)
        else:  # Prediction
            placements, options = [(None, answer_pos)], list(SHAPES)
        for key, place in zip(keys, placements, strict=True):
            companions = rng.choice(others, OBJECTS_PER_SHOT - 1, replace=False).tolist()
            objects[key] = shot_objects([target, *companions], rng, {target: place})
    shots = [Shot(s, n, objs) for s, n, objs in zip(starts, lengths, objects, strict=True)]
    question = QUESTION[qtype].format(c=target)
    return Clip(shots, qtype, question, options, answer_pos, keys, target)


def feasibility_colours(n_shots: int, key: int, target: str, answer: str, rng: np.random.Generator) -> list[list[str]]:
    """The colours of every shot of a Feasibility clip: the key shot holds the target, the answer partner and one
    other target-group colour; every partner colour appears in PARTNER_SHOTS shots in all (the answer's once more
    outside the key shot, the others in PARTNER_SHOTS non-key shots), never with the target; the rest of every shot
    is other target-group colours."""
    fillers = [c for c in TARGETS if c != target]
    others = [s for s in range(n_shots) if s != key]
    partners_in: list[list[str]] = [[] for _ in range(n_shots)]
    partners_in[key] = [answer]
    for colour in PARTNERS:
        need = PARTNER_SHOTS - (colour == answer)
        for s in rng.choice(others, size=need, replace=False).tolist():
            partners_in[s].append(colour)
    colours = []
    for s in range(n_shots):
        taken = [target, *partners_in[s]] if s == key else partners_in[s]
        if len(taken) > OBJECTS_PER_SHOT:  # too many partners in one shot: move the extra to a shot with room
            return feasibility_colours(n_shots, key, target, answer, rng)
        fill = rng.choice(fillers, OBJECTS_PER_SHOT - len(taken), replace=False).tolist()
        colours.append([*taken, *fill])
    return colours


def generate_split(name: str, count: int, seed: int) -> list[Clip]:
    """`count` questions, the types and answer positions cycled (balanced), in a seeded random order."""
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    clips = [make_clip(TYPES[i % 4], (i // 4) % 4, rng) for i in range(count)]
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
        "key_events": clip.key_events,
    }
    for j, option in enumerate(clip.options):
        item[f"a{j}"] = option
    return item


def keyframe_recall(keyframes: list[int], chosen: list[int]) -> float:
    """Fraction of a question's key frames among the chosen frames (the eval contract's key-frame recall)."""
    return len(set(keyframes) & set(chosen)) / len(keyframes)


def event_recall(key_events: list[list[int]], chosen: list[int]) -> float:
    """Fraction of a question's key shots of which at least one frame was chosen: the answer was seen (Sequence:
    both appearances are needed for a full figure)."""
    picked = set(chosen)
    return sum(bool(picked & set(e)) for e in key_events) / len(key_events)


def segment_reachable(keyframes: list[int], n_frames: int, segments: int) -> bool:
    """Whether one-frame-per-segment selection can pick all key frames."""
    seg = [t * segments // n_frames for t in keyframes]
    return len(set(seg)) == len(seg)


def events_reachable(key_events: list[list[int]], n_frames: int, segments: int) -> bool:
    """Whether one-frame-per-segment selection can see every key shot (a frame of each in distinct segments)."""
    from itertools import product

    return any(len({t * segments // n_frames for t in pick}) == len(pick) for pick in product(*key_events))


# ---- question-blind frame statistics: what a selector could use without reading the question ----
def object_pixels(frames: np.ndarray) -> np.ndarray:
    """[T] pixels that differ from the background (how much "stuff" a frame shows)."""
    return (np.abs(frames.astype(np.int16) - np.array(BACKGROUND, np.int16)).max(-1) > 24).sum((1, 2)).astype(float)


def frame_difference(frames: np.ndarray) -> np.ndarray:
    """[T] mean absolute difference to the previous frame (the first frame: to the second), a shot detector's cue."""
    f = frames.astype(np.float32)
    d = np.abs(np.diff(f, axis=0)).mean((1, 2, 3))
    return np.concatenate([d[:1], d])


def colourfulness(frames: np.ndarray) -> np.ndarray:
    """[T] Hasler and Suesstrunk's colourfulness (opponent-colour spread), a question-free "interestingness"."""
    f = frames.astype(np.float32)
    rg = f[..., 0] - f[..., 1]
    yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    std = np.sqrt(rg.std((1, 2)) ** 2 + yb.std((1, 2)) ** 2)
    mean = np.sqrt(rg.mean((1, 2)) ** 2 + yb.mean((1, 2)) ** 2)
    return std + 0.3 * mean


BLIND_STATISTICS = {"object_pixels": object_pixels, "frame_difference": frame_difference,
                    "colourfulness": colourfulness}


def blind_statistics(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Every question-blind statistic of one clip's frames [T, H, W, 3]: name -> [T]."""
    return {name: stat(frames) for name, stat in BLIND_STATISTICS.items()}


def top_k_random_ties(scores: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """The k highest-scoring frames, ties broken at random."""
    order = np.lexsort((rng.random(len(scores)), -scores))
    return sorted(order[:k].tolist())


def blind_selection_recall(items: list[dict[str, Any]], statistics: list[dict[str, np.ndarray]], ks: tuple[int, ...],
                           seed: int) -> dict[str, dict[str, Any]]:
    """How much a selector that ignores the question finds: for uniform, random and each question-blind statistic's
    top-k (statistics: blind_statistics of each question's clip), at each k, per question type and over all
    questions, the key-frame recall (the eval contract's) and the key-shot recall (event_recall); for each statistic
    also its key-frame AUC (0.5: no signal). {selector: {f"{k}f": {type|"all": {"keyframe", "event"}}, "auc": ...}}"""
    from vila.evaluation.stats import key_frame_auc

    rng = np.random.default_rng(seed)
    n_frames = len(next(iter(statistics[0].values())))
    picks: dict[tuple[str, int], list[list[int]]] = {}
    for k in ks:
        grid = uniform_indices(n_frames, k, None, 1)[0].tolist()
        picks["uniform", k] = [grid] * len(items)
        picks["random", k] = [sorted(rng.choice(n_frames, k, replace=False).tolist()) for _ in items]
        for name in BLIND_STATISTICS:
            picks[name, k] = [top_k_random_ties(st[name], k, rng) for st in statistics]

    def by_type(values: list[float]) -> dict[str, float]:
        return {t: float(np.mean([v for v, it in zip(values, items, strict=True) if t in ("all", it["type"])]))
                for t in ("all", *TYPES) if any(t in ("all", it["type"]) for it in items)}

    out: dict[str, dict[str, Any]] = {}
    for (name, k), chosen in picks.items():
        pairs = list(zip(items, chosen, strict=True))
        out.setdefault(name, {})[f"{k}f"] = {
            "keyframe": by_type([keyframe_recall(it["keyframes"], c) for it, c in pairs]),
            "event": by_type([event_recall(it["key_events"], c) for it, c in pairs])}
    for name in BLIND_STATISTICS:
        out[name]["auc"] = by_type([key_frame_auc(st[name], it["keyframes"]) for it, st in
                                    zip(items, statistics, strict=True)])
    return out


def split_stats(items: list[dict[str, Any]], n_frames: int = FRAMES, select: int = 4) -> dict[str, Any]:
    uniform = uniform_indices(n_frames, select, None, 1)[0].tolist()
    answers = np.bincount([it["answer"] for it in items], minlength=4)
    types = {t: sum(it["type"] == t for it in items) for t in TYPES}
    shot_frames = [len(e) for it in items for e in it["key_events"]]
    return {
        "questions": len(items),
        "uniform4_keyframe_coverage": float(np.mean([keyframe_recall(it["keyframes"], uniform) for it in items])),
        "uniform4_event_coverage": float(np.mean([event_recall(it["key_events"], uniform) for it in items])),
        "segment_reachable_fraction": float(np.mean([events_reachable(it["key_events"], n_frames, select)
                                                     for it in items])),
        "answer_position_fraction": {"ABCD"[i]: float(answers[i] / len(items)) for i in range(4)},
        "type_counts": types,
        "key_shot_frames": {str(n): int(c) for n, c in zip(*np.unique(shot_frames, return_counts=True), strict=True)},
        "uniform4_indices": uniform,
    }


def frame_labels(clip: Clip, frame_ids: list[int] | None = None) -> dict[str, np.ndarray]:
    """Per-frame supervision for backbone pretraining, from the generator's objects (`frame_ids`: those frames only).

    grounding (about the object the question names): quadrant+1 (0 = absent), shape (4 = absent), colour+1 of the
    partner-group colour beside it (0 = none); description: colour+1 and shape of every quadrant.
    """
    colours = list(COLOURS)
    frames = clip.frames
    ids = list(range(len(frames))) if frame_ids is None else frame_ids
    t = len(ids)
    out = {
        "quadrant": np.zeros(t, np.int64), "shape": np.full(t, len(SHAPES), np.int64), "partner": np.zeros(t, np.int64),
        "quad_colour": np.zeros((t, 4), np.int64), "quad_shape": np.full((t, 4), len(SHAPES), np.int64),
    }
    for i, f in enumerate(ids):
        objs = frames[f]
        for o in objs:
            out["quad_colour"][i, o.quadrant] = colours.index(o.colour) + 1
            out["quad_shape"][i, o.quadrant] = o.shape
            if o.colour == clip.target:
                out["quadrant"][i], out["shape"][i] = o.quadrant + 1, o.shape
                beside = [x for x in objs if x.colour in PARTNERS]
                if beside:
                    out["partner"][i] = colours.index(beside[0].colour) + 1
    return out


# ---- image-set pretraining of the embedded backbone: sets of frames cut from generated clips, with their times ----
@dataclass
class FrameSet:
    """A few frames of a generated clip (in time order), their positions in the clip, and the clip's question."""

    clip: Clip
    frame_ids: list[int]
    pixels: np.ndarray  # uint8 [len(frame_ids), size, size, 3]


def pretraining_set(rng: np.random.Generator, size: int, max_frames: int) -> FrameSet:
    """One pretraining example: a clip of a random type, one frame of each key shot and random other frames (1 to
    max_frames in all), rendered. The question is answerable from the set; Sequence needs the frames' order."""
    qtype = TYPES[int(rng.integers(4))]
    clip = make_clip(qtype, int(rng.integers(4)), rng)
    keys = [int(rng.choice(e)) for e in clip.key_events]
    n = int(rng.integers(len(keys), max_frames + 1))
    rest = [t for t in range(len(clip.frames)) if t not in clip.keyframes]
    ids = sorted([*keys, *rng.choice(rest, n - len(keys), replace=False).tolist()])
    frames = clip.frames
    return FrameSet(clip, ids, render_frames([frames[t] for t in ids], size, rng))


def pretraining_batch(batch: int, size: int, rng: np.random.Generator, max_frames: int) -> list[FrameSet]:
    return [pretraining_set(rng, size, max_frames) for _ in range(batch)]


# ---- the moment-retrieval set: SeViLA's Localizer pre-training (QVHighlights' stand-in) ----
@dataclass
class MomentClip:
    shots: list[Shot]
    query: str
    relevant: list[bool]  # per frame: does it show what the query names

    @property
    def frames(self) -> list[list[Obj]]:
        return [shot.objects for shot in self.shots for _ in range(shot.length)]


def make_moment_clip(colours_named: int, rng: np.random.Generator, n_frames: int = FRAMES) -> MomentClip:
    """A clip of shots and a query naming one colour (relevant: the shots that show it) or two colours together
    (relevant: the shots that show both; shots with only one of them are the hard negatives). 1-3 relevant shots."""
    lengths = shot_lengths(n_frames, rng)
    starts = np.cumsum([0, *lengths[:-1]]).tolist()
    n_shots = len(lengths)
    named = rng.choice(list(COLOURS), colours_named, replace=False).tolist()
    others = [c for c in COLOURS if c not in named]
    relevant_shots = set(rng.choice(n_shots, int(rng.integers(1, 4)), replace=False).tolist())
    objects = []
    for s in range(n_shots):
        if s in relevant_shots:
            chosen = [*named, *rng.choice(others, OBJECTS_PER_SHOT - len(named), replace=False).tolist()]
        elif colours_named == 2 and rng.random() < 0.5:  # one of the two, without the other
            chosen = [named[int(rng.integers(2))], *rng.choice(others, OBJECTS_PER_SHOT - 1, replace=False).tolist()]
        else:
            chosen = rng.choice(others, OBJECTS_PER_SHOT, replace=False).tolist()
        objects.append(shot_objects(chosen, rng))
    shots = [Shot(st, n, objs) for st, n, objs in zip(starts, lengths, objects, strict=True)]
    relevant = [s in relevant_shots for s, n in enumerate(lengths) for _ in range(n)]
    query = MOMENT_QUERY[colours_named].format(c=named[0], d=named[-1])
    return MomentClip(shots, query, relevant)


def generate_moments(count: int, seed: int) -> list[MomentClip]:
    rng = np.random.default_rng([seed, sum(map(ord, "moments"))])
    return [make_moment_clip(1 + i % 2, rng) for i in range(count)]


def moment_item(clip: MomentClip, index: int) -> dict[str, Any]:
    """A moment-retrieval query in the unified format: the query in the question's place, no options, and the
    frames it names."""
    video = f"moments_{index:05d}"
    return {"video": video, "qid": f"moment_{video}", "question": clip.query, "num_option": 0,
            "relevant_frames": [t for t, r in enumerate(clip.relevant) if r]}


def vocabulary() -> list[str]:
    """Every word the benchmark's prompts, questions, queries and options use, split as a whitespace word-level
    tokenizer splits them (the embedded model's vocabulary)."""
    from tokenizers.pre_tokenizers import Whitespace

    from vila.data import prompts

    texts = [prompts.MC_SUFFIX, prompts.VLEP_QUESTION, "Question: Option", *(q.format(c="red") for q in QUESTION.values()),
             *(q.format(c="red", d="blue") for q in MOMENT_QUERY.values()),
             *QUADRANTS, *SHAPES, prompts.LOCALIZER_SUFFIX, prompts.LOCALIZER_MARK, prompts.YES, prompts.NO,
             *(prompts.frame_mark(i) for i in range(1, 33))]
    words = [w for text in texts for w, _ in Whitespace().pre_tokenize_str(text.lower())]
    return [*words, *COLOURS, "object", "objects", "is", "are", "there", "in", "a", "an", "and"]
