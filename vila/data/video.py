"""Video files: write with PyAV (libx264, in-process); read with decord, verified, or PyAV.

Decoded frames are never trusted. decord (the fast path) returns frames of the wrong shape on some
CPUs for some widths (measured: 48x48 H.264 gives 4 channels on an AMD EPYC with AVX2, 32x32 gives 6
on an Intel Xeon with AVX-512), `reader[i]` without an error, and at some sizes frames of the right shape
but from the wrong time (below). So every decoded batch is checked against the stream's own width, height
and 3 channels, as PyAV's demuxer reports them; decord serves a frame size only once its first clip of
that size matched PyAV pixel for pixel; and whatever fails is decoded with PyAV (`decoder: auto`), or is
an error naming the file (`decoder: decord`). The frame count and frame rate that place the sampling
grid come from the demuxer, so both decoders read the same frames of a clip.

Every failure is a `VideoError` naming the file, never a traceback from inside a decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DECODERS = ("auto", "decord", "pyav")
# x264 settings of every clip we write: crf 0 in 4:4:4 (no chroma subsampling) is lossless up to the RGB -> YUV
# rounding. synthqa v2 puts three small coloured objects in every 32 px frame: 4:2:0 blurs neighbouring objects'
# colours (25-27 dB PSNR at crf 12), 4:4:4 at crf 12 gives 35-39 dB, at crf 0 58-62 dB, files no larger (tiny
# frames). zerolatency turns B-frames off, one thread makes the bytes reproducible.
X264_OPTIONS = {"crf": "0", "preset": "veryfast", "tune": "zerolatency", "threads": "1"}
PIXEL_FORMAT = "yuv444p"


class VideoError(ValueError):
    """A video is missing, unreadable, empty, too short, or decodes to frames of the wrong shape."""


@dataclass(frozen=True)
class StreamInfo:
    """What the container says about its first video stream."""

    width: int
    height: int
    frames: int
    fps: float


@dataclass(frozen=True)
class Decoded:
    """Frames [count, H, W, 3] uint8, the decoder that produced them, and why decord did not (if it did not)."""

    frames: np.ndarray
    decoder: str
    fallback_reason: str = ""


def write_clip(path: str | Path, frames: np.ndarray, fps: int = 8) -> None:
    """Write uint8 frames [T, H, W, 3] as an H.264 mp4 (PIXEL_FORMAT; H and W must be even)."""
    import av

    t, h, w, c = frames.shape
    if c != 3 or h % 2 or w % 2 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 frames [T, H, W, 3] with even H and W, got {frames.shape} {frames.dtype}")
    with av.open(str(path), mode="w") as container:
        # All encoder options in one assignment: PyAV's stream.options and codec_context.options are the same
        # dict, and assigning one replaces what the other set (x264 then runs at crf 23 with B-frames).
        stream = container.add_stream("libx264", rate=fps, options=dict(X264_OPTIONS))
        stream.width, stream.height, stream.pix_fmt = w, h, PIXEL_FORMAT
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def encoder_settings(path: str | Path) -> dict[str, str]:
    """The x264 settings recorded in a written clip (x264 stores them in the stream as 'options: k=v ...')."""
    data = Path(path).read_bytes()
    start = data.find(b"x264 - core")
    if start < 0:
        raise VideoError(f"{path}: no x264 settings found in the stream")
    text = data[start : data.find(b"\x00", start)].decode("ascii", "replace")
    _, _, options = text.partition("options: ")
    return dict(kv.split("=", 1) for kv in options.split() if "=" in kv)


def _short(e: Exception) -> str:
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"{path}: video file not found")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: video file is empty (0 bytes)")


def probe(path: str | Path) -> StreamInfo:
    """Width, height, frame count and frame rate from PyAV's demuxer (the count by packets when the
    container does not state it, e.g. webm)."""
    import av

    path = Path(path)
    _check_file(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            n = stream.frames or sum(1 for p in container.demux(stream) if p.size)
            rate = stream.average_rate or stream.guessed_rate
            return StreamInfo(stream.codec_context.width, stream.codec_context.height, int(n), float(rate or 1.0))
    except VideoError:
        raise
    except Exception as e:  # PyAV raises its own error types (InvalidDataError, ...)
        raise VideoError(f"{path}: cannot be decoded ({_short(e)})") from None


def grid_indices(n_frames: int, count: int, start: float | None, end: float | None, fps: float) -> np.ndarray:
    """Middle frame of `count` equal intervals of [start, end] (seconds; the whole video when absent)."""
    first = 0 if start is None else max(0, int(round(start * fps)))
    last = n_frames - 1 if end is None else min(n_frames - 1, int(round(end * fps)))
    if last < first:
        last = first
    edges = np.linspace(first, last + 1, count + 1)
    return np.minimum(((edges[:-1] + edges[1:]) / 2).astype(np.int64), n_frames - 1)


def shape_problem(frames: np.ndarray, info: StreamInfo, count: int) -> str:
    """Why `frames` are not `count` RGB frames of the stream's size ('' when they are)."""
    want = (count, info.height, info.width, 3)
    if frames.dtype != np.uint8 or frames.shape != want:
        return f"frames of shape {tuple(frames.shape)} {frames.dtype}, expected {want} uint8"
    return ""


def decode_decord(path: Path, indices: np.ndarray, info: StreamInfo) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), num_threads=1)
    if len(reader) != info.frames:  # its frame i would not be the demuxer's frame i
        raise VideoError(f"decord counts {len(reader)} frames, the demuxer {info.frames}")
    return reader.get_batch(indices.tolist()).asnumpy()


def decode_pyav(path: Path, indices: np.ndarray) -> np.ndarray:
    """Frames at `indices` (presentation order), decoding from the start up to the last one needed."""
    import av

    wanted = {int(i) for i in indices}
    last = max(wanted)
    got: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                # One swscale thread: its default, a thread per core, gives the same pixels (checked on all 57,600
                # frames of synthqa) at 3x the time on an idle 2-core machine and 12x while another job runs.
                got[i] = frame.to_ndarray(format="rgb24", threads=1)
            if i >= last:
                break
    missing = sorted(wanted - set(got))
    if missing:
        raise VideoError(f"{path}: PyAV decoded {len(got)} of the frames asked for; frames {missing[:5]} absent")
    return np.stack([got[int(i)] for i in indices])


# Frame size -> '' when decord's frames of the first clip of that size this process decoded were identical to
# PyAV's, else why not. decord's errors depend on the frame size (and the encoder's settings): besides the
# wrong shapes above, at 32x32 with x264's zerolatency tuning its get_batch returns frames of the right
# shape but the wrong content (grid [0, 1, 3, 4, ...] comes back as source frames [0, 1, 0, 1, 2, 3, ...]).
# A shape check cannot see that, so decord serves a size only after a pixel-exact match with PyAV.
_DECORD_VERDICT: dict[tuple[int, int], str] = {}


def _decode_checked(path: Path, idx: np.ndarray, info: StreamInfo, decoder: str) -> tuple[np.ndarray, str, str]:
    """(frames, decoder used, why decord was not used): decord where its frames pass the shape check and
    its first clip of this size matched PyAV pixel for pixel; PyAV otherwise (or an error for `decord`)."""
    count, key = len(idx), (info.width, info.height)
    reason, frames, reference = _DECORD_VERDICT.get(key, ""), None, None
    if reason:
        reason = f"decord failed the check on the first {key[0]}x{key[1]} clip of this run: {reason}"
    else:
        try:
            frames = decode_decord(path, idx, info)
            reason = shape_problem(frames, info, count)
        except Exception as e:  # decord raises DECORDError with a C++ trace, also for its own shape checks
            reason = f"decord failed ({_short(e)})"
        if key not in _DECORD_VERDICT:
            if not reason:
                reference = decode_pyav(path, idx)
                differ = np.flatnonzero((reference != frames).reshape(count, -1).any(1))
                if len(differ):
                    reason = (f"decord's frames differ from PyAV's at grid positions {differ[:8].tolist()} "
                              f"(frames {idx[differ[:8]].tolist()})")
            _DECORD_VERDICT[key] = reason
    if not reason:
        return frames, "decord", ""
    if decoder == "decord":
        raise VideoError(f"{path}: decord's frames cannot be used: {reason} (set data.decoder: auto to decode such clips with PyAV)")
    return (reference if reference is not None else decode_pyav(path, idx)), "pyav", reason


def decode_grid(
    path: str | Path, count: int, start: float | None = None, end: float | None = None, size: int | None = None,
    decoder: str = "auto",
) -> Decoded:
    """Decode `count` frames on the uniform grid of [start, end]: uint8 [count, H, W, 3] (size x size if given).

    A video with fewer frames than `count` is an error: repeating frames would silently change what
    "N frames" means for every model that reads the cache.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    path = Path(path)
    info = probe(path)
    if info.frames == 0:
        raise VideoError(f"{path}: video has no frames")
    if info.frames < count:
        raise VideoError(f"{path}: video has {info.frames} frames, fewer than the {count} to sample (data.frames)")
    if start is not None and start * info.fps >= info.frames:
        raise VideoError(f"{path}: the span starts at {start} s, after the video's end "
                         f"({info.frames} frames at {info.fps:g} fps = {info.frames / info.fps:.2f} s)")
    idx = grid_indices(info.frames, count, start, end, info.fps)
    try:
        if decoder == "pyav":
            frames, used, reason = decode_pyav(path, idx), "pyav", ""
        else:
            frames, used, reason = _decode_checked(path, idx, info, decoder)
    except VideoError:
        raise
    except Exception as e:
        raise VideoError(f"{path}: decoding failed ({_short(e)})") from None
    if used == "pyav" and (problem := shape_problem(frames, info, count)):
        raise VideoError(f"{path}: PyAV returned {problem}")
    if size is not None and frames.shape[1:3] != (size, size):
        frames = resize_square(frames, size)
    return Decoded(frames, used, reason)


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


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 arrays, in dB (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
