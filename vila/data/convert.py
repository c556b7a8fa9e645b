"""Official annotation releases -> the unified format (one JSON list per split), and its check on load.

Unified item: video, qid, question, a0..a{n-1}, num_option, answer (index), start/end (seconds,
where the dataset gives a span), type (where the dataset has question types). A moment-retrieval
item (synthqa's `moments` split) has num_option 0 and relevant_frames instead of options and answer.
Every malformed record is an error naming the file, the record and the field: when converting, and
again whenever a stage reads a unified file (`read_unified`), since a file may have been edited or
written by hand (an answer index past the options would otherwise be scored as a wrong answer).
"""

from __future__ import annotations

import csv
import importlib
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vila.data.registry import DATASETS
from vila.io import read_json, write_json

log = logging.getLogger(__name__)
Item = dict[str, Any]

class AnnotationError(ValueError):
    """An official annotation record is missing a field or has an impossible value."""


def _field(rec: dict[str, Any], key: str, where: str) -> Any:
    if key not in rec or rec[key] is None or rec[key] == "":
        raise AnnotationError(f"{where}: missing field '{key}'")
    return rec[key]


def _index(value: Any, n: int, key: str, where: str) -> int:
    try:
        idx = int(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: field '{key}' = {value!r} is not an integer option index") from None
    if str(value).strip() != str(idx) and not isinstance(value, int):
        raise AnnotationError(f"{where}: field '{key}' = {value!r} is not an integer option index")
    if not 0 <= idx < n:
        raise AnnotationError(f"{where}: field '{key}' = {idx} is out of range for {n} options")
    return idx


def _seconds(value: Any, key: str, where: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: field '{key}' = {value!r} is not a time in seconds") from None
    if not math.isfinite(seconds) or isinstance(value, bool):
        raise AnnotationError(f"{where}: field '{key}' = {value!r} is not a time in seconds")
    return seconds


def _span(ts: Any, where: str) -> tuple[float, float] | None:
    """TVQA/How2QA "start-end" strings, VLEP [start, end] lists; None when the span is unknown (NaN)."""
    if isinstance(ts, list | tuple) and len(ts) == 2:
        parts = list(ts)
    elif isinstance(ts, str) and "-" in ts[1:]:
        cut = ts.index("-", 1)
        parts = [ts[:cut], ts[cut + 1 :]]
    else:
        raise AnnotationError(f"{where}: field 'ts' = {ts!r} is not 'start-end' or [start, end]")
    try:
        start, end = float(parts[0]), float(parts[1])
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: field 'ts' = {ts!r} has non-numeric times") from None
    if math.isnan(start) or math.isnan(end):
        return None
    if end < start:
        raise AnnotationError(f"{where}: field 'ts' = {ts!r} ends before it starts")
    return start, end


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_time(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value))


def unified_record_error(rec: Any, moments: bool) -> str | None:
    """What is wrong with one unified record (None when nothing is): fields present, of their types, the answer
    one of the options, the span in order."""
    if not isinstance(rec, dict):
        return f"is a {type(rec).__name__}, expected an object"
    for key in ("qid", "video"):
        if not isinstance(rec.get(key), str) or not rec[key]:
            return f"field '{key}' = {rec.get(key)!r}: expected a non-empty string"
    if not isinstance(rec.get("question"), str):  # may be empty: VLEP has no question text
        return f"field 'question' = {rec.get('question')!r}: expected a string"
    if "type" in rec and not isinstance(rec["type"], str):
        return f"field 'type' = {rec['type']!r}: expected a string"
    if not (_is_time(rec.get("start")) and _is_time(rec.get("end"))):
        return f"fields 'start'/'end' = {rec.get('start')!r}/{rec.get('end')!r}: expected seconds or null"
    if rec.get("start") is not None and rec.get("end") is not None and rec["end"] < rec["start"]:
        return f"fields 'start'/'end' = {rec['start']}/{rec['end']}: the span ends before it starts"
    if moments:
        frames = rec.get("relevant_frames")
        if not isinstance(frames, list) or not all(_is_int(f) and f >= 0 for f in frames):
            return f"field 'relevant_frames' = {frames!r}: expected a list of frame indices"
        return None
    n = rec.get("num_option")
    if not _is_int(n) or n < 2:
        return f"field 'num_option' = {n!r}: expected an integer of at least 2"
    for i in range(n):
        if not isinstance(rec.get(f"a{i}"), str):
            return f"field 'a{i}' = {rec.get(f'a{i}')!r}: expected option text (num_option is {n})"
    answer = rec.get("answer")
    if not _is_int(answer) or not 0 <= answer < n:
        return f"field 'answer' = {answer!r}: expected an option index in 0..{n - 1}"
    return None


def check_unified(items: Any, source: str, moments: bool = False) -> list[Item]:
    """`items` if they are a valid unified split, else an AnnotationError naming `source`, the record and field."""
    if not isinstance(items, list):
        raise AnnotationError(f"{source}: is a JSON {type(items).__name__}, expected a list of unified-format questions")
    for i, rec in enumerate(items):
        if (error := unified_record_error(rec, moments)) is not None:
            qid = f" (qid {rec['qid']})" if isinstance(rec, dict) and isinstance(rec.get("qid"), str) else ""
            raise AnnotationError(f"{source}: record {i}{qid}: {error}")
    qids = [it["qid"] for it in items]
    if len(set(qids)) != len(qids):
        seen: set[str] = set()
        dup = sorted({q for q in qids if q in seen or seen.add(q)})[:5]
        raise AnnotationError(f"{source}: duplicate qids {dup}")
    return items


def read_unified(path: str | Path, moments: bool = False) -> list[Item]:
    """A unified annotation file, checked record by record (`moments`: a moment-retrieval split)."""
    return check_unified(read_json(path, "a JSON list of unified-format questions"), str(path), moments)


def _options(item: Item, options: list[str]) -> Item:
    for i, text in enumerate(options):
        item[f"a{i}"] = text
    item["num_option"] = len(options)
    return item


def _jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise AnnotationError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise AnnotationError(f"{where}: expected a JSON object per line")
            yield where, rec


def convert_star(path: Path) -> list[Item]:
    try:
        records = read_json(path, "STAR's official JSON list of questions")
    except ValueError as e:
        raise AnnotationError(str(e)) from None
    if not isinstance(records, list):
        raise AnnotationError(f"{path}: expected a JSON list of questions")
    items = []
    for n, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise AnnotationError(f"{path}[{n}]: is a {type(rec).__name__}, expected a question object")
        where = f"{path}[{n}] (question_id {rec.get('question_id', '?')})"
        qid = str(_field(rec, "question_id", where))
        choices = _field(rec, "choices", where)
        if not isinstance(choices, list) or not choices:
            raise AnnotationError(f"{where}: field 'choices' must be a non-empty list")
        texts = [str(_field(c, "choice", f"{where} choices[{i}]")) for i, c in enumerate(choices)]
        answer = str(_field(rec, "answer", where))
        if answer not in texts:
            raise AnnotationError(f"{where}: answer {answer!r} is not among the choices {texts}")
        item: Item = {
            "video": str(_field(rec, "video_id", where)),
            "qid": qid,
            "question": str(_field(rec, "question", where)),
            "answer": texts.index(answer),
            "type": qid.split("_")[0],
        }
        for key in ("start", "end"):
            if rec.get(key) is not None:
                item[key] = _seconds(rec[key], key, where)
        items.append(_options(item, texts))
    return items


def convert_nextqa(path: Path) -> list[Item]:
    items = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = ["video", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4"]
        absent = [c for c in need if c not in (reader.fieldnames or [])]
        if absent:
            raise AnnotationError(f"{path}: missing columns {absent} (have {reader.fieldnames})")
        for n, rec in enumerate(reader, 2):
            where = f"{path}:{n}"
            options = [str(_field(rec, f"a{i}", where)).strip() for i in range(5)]
            qtype = str(_field(rec, "type", where))
            video = str(_field(rec, "video", where))
            item: Item = {
                "video": video,
                "qid": f"{qtype}_{video}_{_field(rec, 'qid', where)}",
                # the released scripts append '?' to questions and '.' to options
                "question": str(_field(rec, "question", where)).strip() + "?",
                "answer": _index(_field(rec, "answer", where), 5, "answer", where),
                "type": qtype,
            }
            items.append(_options(item, [o + "." for o in options]))
    return items


def _convert_tvqa_like(path: Path, n_options: int) -> list[Item]:
    items = []
    for n, (where, rec) in enumerate(_jsonl(path)):
        item: Item = {
            "video": str(_field(rec, "vid_name", where)),
            "qid": str(rec.get("qid", f"{path.stem}_{n}")),
            "question": str(_field(rec, "q", where)),
            "answer": _index(_field(rec, "answer_idx", where), n_options, "answer_idx", where),
        }
        span = _span(_field(rec, "ts", where), where)
        if span:
            item["start"], item["end"] = span
        items.append(_options(item, [str(_field(rec, f"a{i}", where)) for i in range(n_options)]))
    return items


def convert_tvqa(path: Path) -> list[Item]:
    return _convert_tvqa_like(path, 5)


def convert_how2qa(path: Path) -> list[Item]:
    return _convert_tvqa_like(path, 4)


def convert_vlep(path: Path) -> list[Item]:
    items = []
    for where, rec in _jsonl(path):
        events = _field(rec, "events", where)
        if not isinstance(events, list) or len(events) != 2:
            raise AnnotationError(f"{where}: field 'events' must list the two future events")
        item: Item = {
            "video": str(_field(rec, "vid_name", where)),
            "qid": str(_field(rec, "example_id", where)),
            "question": "",  # VLEP has no question text; the prompt asks for the next event
            "answer": _index(_field(rec, "answer", where), 2, "answer", where),
        }
        span = _span(_field(rec, "ts", where), where)
        if span:
            item["start"], item["end"] = span
        items.append(_options(item, [str(e) for e in events]))
    return items


def convert_qvhighlights(path: Path, frames: int) -> list[Item]:
    """QVHighlights (SeViLA's Localizer pre-training) -> moment-retrieval items: the query in the question's place
    and the frames of the `frames`-frame grid over the whole video (frame k at (k + 1/2) duration / frames seconds,
    as preprocess samples it) that fall in one of its relevant windows; a window between two grid frames names the
    nearest one."""
    items = []
    for where, rec in _jsonl(path):
        duration = _seconds(_field(rec, "duration", where), "duration", where)
        windows = _field(rec, "relevant_windows", where)
        if duration <= 0 or not isinstance(windows, list) or not windows:
            raise AnnotationError(f"{where}: expected a positive 'duration' and a non-empty list 'relevant_windows'")
        times = [(k + 0.5) * duration / frames for k in range(frames)]
        relevant: set[int] = set()
        for w in windows:
            start, end = _span(w, where) or (None, None)
            if start is None:
                raise AnnotationError(f"{where}: field 'relevant_windows' holds {w!r}, not [start, end] in seconds")
            inside = {k for k, t in enumerate(times) if start <= t < end}
            relevant |= inside or {min(range(frames), key=lambda k: abs(times[k] - (start + end) / 2))}
        items.append({"video": str(_field(rec, "vid", where)), "qid": f"moment_{_field(rec, 'qid', where)}",
                      "question": str(_field(rec, "query", where)), "num_option": 0,
                      "relevant_frames": sorted(relevant)})
    return check_unified(items, str(path), moments=True)


def convert(dataset: str, src: Path, out: Path) -> dict[str, int]:
    """Convert the splits present in `src`; returns split -> question count."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise FileNotFoundError(f"--src {src}: not a directory")
    info = DATASETS[dataset]
    if info.convert is None:
        raise ValueError(f"{dataset}: generated, not converted from official files")
    module, _, func = info.convert.partition(":")
    converter = getattr(importlib.import_module(module), func)
    counts, missing = {}, []
    for split, name in info.official_files.items():
        path = src / name
        if not path.exists():
            missing.append(name)
            continue
        items = check_unified(converter(path), str(path))
        write_json(out / f"{split}.json", items)
        counts[split] = len(items)
    if not counts:
        raise FileNotFoundError(f"--src {src}: none of the official {dataset} files are there "
                                f"(expected {', '.join(info.official_files.values())})")
    for split, n in counts.items():
        log.info("%s %s: %d questions -> %s", dataset, split, n, out / f"{split}.json")
    if missing:
        log.info("%s: not present (not converted): %s", dataset, ", ".join(missing))
    return counts


def convert_cli(dataset: str, src: str, out: str) -> None:
    counts = convert(dataset, Path(src), Path(out))
    missing = [n for s, n in DATASETS[dataset].official_files.items() if s not in counts]
    print(json.dumps({"converted": counts, "missing": missing}, sort_keys=True))
