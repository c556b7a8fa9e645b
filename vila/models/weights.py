"""A local InstructBLIP weights directory (save_pretrained layout): what it must hold, and its content digest.

No torch here: params validation (vila/config.py) and Snakemake's DAG building ask these questions before any
stage runs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vila.io import read_json, write_json

HOW_TO_GET_WEIGHTS = (
    "download 'Salesforce/instructblip-flan-t5-xl' on a machine with network access "
    "(e.g. `huggingface-cli download Salesforce/instructblip-flan-t5-xl --local-dir DIR`), copy DIR here and set "
    "model.weights: DIR in params.yaml (README, 'Real data and weights')"
)
TOKENIZER_FILES = ("tokenizer_config.json",)  # the language model's; the Q-Former's in qformer_tokenizer/


def missing_weights_files(path: Path) -> list[str]:
    """What a save_pretrained InstructBLIP directory lacks: its config, its safetensors weights (one file, or an
    index and every shard it names) and both tokenizers (the language model's, and the Q-Former's in
    qformer_tokenizer/, as InstructBlipProcessor saves them)."""
    missing = [name for name in ("config.json", *TOKENIZER_FILES) if not (path / name).is_file()]
    missing += [f"qformer_tokenizer/{name}" for name in TOKENIZER_FILES if not (path / "qformer_tokenizer" / name).is_file()]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = read_json(index, "a safetensors index (weight_map: tensor -> shard file)").get("weight_map", {})
        missing += sorted({f for f in shards.values() if not (path / f).is_file()}) or ([] if shards else [index.name])
    elif not (path / "model.safetensors").is_file():
        missing.append("model.safetensors (or model.safetensors.index.json and its shards)")
    return missing


def weights_errors(weights: str | None) -> list[str]:
    """model.weights as params validation sees it: a complete directory, or the one line saying what is wrong."""
    if not weights:
        return []
    path = Path(weights)
    if not path.is_dir():
        return [f"model.weights: {weights!r} is not a directory: {HOW_TO_GET_WEIGHTS}"]
    if missing := missing_weights_files(path):
        return [f"model.weights: {path} is incomplete, it lacks {', '.join(missing)}: {HOW_TO_GET_WEIGHTS}"]
    return []


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def weights_digest(weights: str, cache: Path | None = None) -> str:
    """sha256 over every file of the weights directory (its name under the directory and its content): what a
    stage that reads model.weights depends on, so that new weights at the same path rerun it. Each file's hash is
    kept in `cache` under its path, size, mtime and inode, so that a DAG build rehashes only what changed
    (Flan-T5-XL's ~16 GB take a minute once)."""
    root = Path(weights)
    known = read_json(cache) if cache and cache.is_file() else {}
    seen, digest = {}, hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        seen[key] = known.get(key) or _file_sha256(path)
        digest.update(f"{path.relative_to(root).as_posix()}\0{seen[key]}\n".encode())
    if cache and seen != known:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json(cache, seen)
    return digest.hexdigest()


def digest_cache() -> Path:
    return Path(os.environ.get("VILA_CACHE", ".snakemake")) / "vila-weights-sha256.json"
