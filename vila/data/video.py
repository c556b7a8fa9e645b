"""Video files: write with PyAV (libx264, in-process), read with decord.

Reading wraps decord's errors so a bad file is reported by name, never as a traceback from
inside the decoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class VideoError(ValueError):
    """A video is missing, unreadable, empty or too short."""


def write_clip(path: str | Path, frames: np.ndarray, fps: int = 8) -> None:
    """Write uint8 frames [T, H, W, 3] as an H.264 mp4 (yuv420p; H and W must be even)."""
    import av

    t, h, w, c = frames.shape
    if c != 3 or h % 2 or w % 2 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 frames [T, H, W, 3] with even H and W, got {frames.shape} {frames.dtype}")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # crf 12: near-lossless at these sizes; the benchmark's colours must survive compression.
        stream.options = {"crf": "12", "preset": "veryfast", "tune": "zerolatency"}
        stream.codec_context.options = {"threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _open(path: str | Path):
    import decord

    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: video file not found")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: video file is empty (0 bytes)")
    try:
        return decord.VideoReader(str(path), num_threads=1)
    except Exception as e:  # decord raises its own DECORDError with a C++ trace
        raise VideoError(f"{path}: cannot be decoded ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def grid_indices(n_frames: int, count: int, start: float | None, end: float | None, fps: float) -> np.ndarray:
    """Middle frame of `count` equal intervals of [start, end] (seconds; the whole video when absent)."""
    first = 0 if start is None else max(0, int(round(start * fps)))
    last = n_frames - 1 if end is None else min(n_frames - 1, int(round(end * fps)))
    if last < first:
        last = first
    edges = np.linspace(first, last + 1, count + 1)
    return np.minimum(((edges[:-1] + edges[1:]) / 2).astype(np.int64), n_frames - 1)


def read_grid(
    path: str | Path, count: int, start: float | None = None, end: float | None = None, size: int | None = None
) -> np.ndarray:
    """Decode `count` frames on the uniform grid of [start, end]: uint8 [count, H, W, 3].

    A video with fewer frames than `count` is an error: repeating frames would silently change what
    "N frames" means for every model that reads the cache.
    """
    reader = _open(path)
    n = len(reader)
    if n == 0:
        raise VideoError(f"{path}: video has no frames")
    if n < count:
        raise VideoError(f"{path}: video has {n} frames, fewer than the {count} to sample (data.frames)")
    idx = grid_indices(n, count, start, end, float(reader.get_avg_fps() or 1.0))
    try:
        frames = reader.get_batch(idx.tolist()).asnumpy()
    except Exception as e:
        raise VideoError(f"{path}: decoding failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if size is not None and frames.shape[1:3] != (size, size):
        frames = resize_square(frames, size)
    return frames


def resize_square(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize (bilinear, via PIL) to size x size."""
    from PIL import Image

    _, h, w, _ = frames.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    out = [
        np.asarray(Image.fromarray(f[top : top + s, left : left + s]).resize((size, size), Image.BILINEAR))
        for f in frames
    ]
    return np.stack(out)
