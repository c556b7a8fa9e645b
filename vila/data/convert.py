"""Official annotation releases -> the unified format (one JSON list per split).

Unified item: video, qid, question, a0..a{n-1}, num_option, answer (index), start/end (seconds,
where the dataset gives a span), type (where the dataset has question types).
Every malformed record is an error naming the file, the record and the field.
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
from vila.io import write_json

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
        records = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(records, list):
        raise AnnotationError(f"{path}: expected a JSON list of questions")
    items = []
    for n, rec in enumerate(records):
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
                item[key] = float(rec[key])
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
        items = converter(path)
        qids = [it["qid"] for it in items]
        if len(set(qids)) != len(qids):
            dup = sorted({q for q in qids if qids.count(q) > 1})[:5]
            raise AnnotationError(f"{path}: duplicate qids {dup}")
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
