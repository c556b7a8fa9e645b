"""Atomic outputs, hashing, and the readers every stage uses, shared by every stage.

Every stage writes into a temporary sibling and renames it into place, so an interrupted stage
leaves nothing that Snakemake, DVC or a rerun would mistake for a finished output. The temporary
sibling is private while it is written (mkstemp/mkdtemp make it 0600/0700) and gets the user's umask
just before the rename, so a colleague on a shared cluster can read the reports and models.

Every file is read through one door that names it: a missing file, a folder where a file belongs,
a permission, a decoding or format error (JSON, YAML, safetensors) is one line with the path and what
was expected (a ValueError or an OSError, which the CLI prints as one line), never a bare library
traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


def umask() -> int:
    """The process's umask (os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_mode(path: str | Path) -> None:
    """Give a private temporary file or folder the mode the user's umask gives a new one."""
    path = Path(path)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask())


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (sorted keys, stable float formatting, trailing newline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        publish_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_text(path: str | Path, what: str = "a file") -> str:
    """The text of `path`, or one line naming it: missing, a folder, unreadable, not UTF-8."""
    path = Path(path)
    try:
        return path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found (expected {what})") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path}: is a folder (expected {what})") from None
    except PermissionError:
        raise PermissionError(f"{path}: permission denied (expected {what} you can read)") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text at byte {e.start} (expected {what})") from None


def read_json(path: str | Path, what: str = "a JSON file") -> Any:
    path = Path(path)
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}; expected {what})") from None


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the
    last value silently: a duplicated params key would run with a value its author may not have meant)."""


def _unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def parse_yaml(text: str, source: str) -> Any:
    """YAML text from `source` (named in the error), duplicate keys refused."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise ValueError(f"{source}: not valid YAML ({' '.join(str(e).split())})") from None


def read_yaml(path: str | Path, what: str = "a YAML file") -> Any:
    return parse_yaml(read_text(path, what), str(path))


def read_safetensors(path: str | Path, framework: str = "torch") -> dict[str, Any]:
    """The tensors of a safetensors file (`framework`: torch or numpy), or one line naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found (expected safetensors weights)")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder (expected safetensors weights)")
    if framework == "numpy":
        from safetensors.numpy import load_file
    else:
        from safetensors.torch import load_file
    try:
        return load_file(str(path))
    except PermissionError:
        raise PermissionError(f"{path}: permission denied (expected safetensors weights you can read)") from None
    except Exception as e:  # safetensors' SafetensorError (header, truncation) is not an OSError or ValueError
        raise ValueError(f"{path}: not a readable safetensors file ({' '.join(str(e).split())})") from None


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        publish_mode(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path that replaces `path` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        publish_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(path: str | Path) -> str:
    """Content hash of a file or a directory (relative names and bytes of every file)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
