"""The `speed` stage: every variant timed in one process, end to end from decoded uint8 frames.

What one timed call covers: uint8 frames already decoded on the clip's sampling grid (as the decode
cache holds them) and the question already tokenised -> normalisation, ViT on the frames the variant
encodes, Frame-Prompter, Q-Former, T5 encoder and the two decoder steps -> the answer letter.
Video decoding and tokenisation are not timed: they are the same for every variant.
"""

from __future__ import annotations

import copy
import logging
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vila.data.dataset import Batcher, load_split
from vila.data.sampling import uniform_indices
from vila.io import write_json
from vila.models.registry import model_names, references, speedup_key
from vila.paths import Paths

log = logging.getLogger(__name__)
TIMED = ("decoded uint8 frames on the 32-frame grid + tokenised prompts -> answer letter (ViT, frame selection: "
         "the Frame-Prompter, or SeViLA's Localizer with one LLM pass per sampled frame; Q-Former, T5 encoder + 2 "
         "decoder steps); decoding and tokenisation excluded")


def time_interleaved(calls: dict[str, Callable[[], Any]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Every call timed `repeats` times in turn (A, B, C, A, B, C, ...) after `warmup` calls each, so a slow
    spell of a shared machine lands on every variant alike, not on whichever happened to be timed then."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def time_call(fn: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    return time_interleaved({"call": fn}, warmup, repeats)["call"]


def batcher(tokenizer: Any, qa: Any, model: Any) -> Batcher:
    return Batcher(tokenizer, qa, localizer=model.config.selector == "localizer")


def end_to_end_frames(model: Any, frames: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What a variant is given, and the frames' grid positions: the whole grid, or a uniform model's N grid frames
    (interval middles)."""
    if model.config.selector is None:
        index = torch.from_numpy(uniform_indices(total, model.config.frames, None, 1)[0])
        return frames[:, index], index.expand(len(frames), -1)
    return frames, torch.arange(total).expand(len(frames), -1)


def end_to_end(model: Any, batch: dict[str, torch.Tensor], total: int) -> Callable[[], Any]:
    """The timed call: frames -> answer. A uniform model first takes its N grid frames."""
    frames, index = end_to_end_frames(model, batch["frames"], total)
    inputs = {k: v for k, v in batch.items() if k not in ("frames", "labels", "vit_tokens", "frame_index")}
    inputs["frame_index"] = index

    def call() -> Any:
        with torch.inference_mode():
            return model(frames=frames, **inputs).letter_logits.argmax(-1)

    return call


def step_calls(model: Any, batch: dict[str, torch.Tensor], total: int) -> dict[str, Callable[[], Any]]:
    """The same work as end_to_end cut into the forward pass's own steps (vit, select, qformer, llm: the model's
    `steps`), each re-run alone on the inputs it had in one traced pass."""
    from vila.models.modeling import ForwardPass, trace_steps

    frames, index = end_to_end_frames(model, batch["frames"], total)
    p = ForwardPass(batch["qformer_ids"], batch["qformer_mask"], batch["input_ids"], batch["attention_mask"],
                    frames=frames, frame_index=index, localizer_ids=batch.get("localizer_ids"), localizer_mask=batch.get("localizer_mask"))
    with torch.inference_mode():
        traced = trace_steps(model, p)

    def call(step: Callable[[Any], None], before: Any) -> Callable[[], Any]:
        def inner() -> None:
            with torch.inference_mode():
                step(copy.copy(before))
        return inner

    return {name: call(step, before) for name, step, before in traced}


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def peak_memory_mb(call: Callable[[], Any]) -> float:
    """Peak resident memory added by one call, in MiB.

    CUDA: the allocator's peak. CPU: the call runs in a forked child (models already loaded, nothing
    re-imported), whose peak RSS minus its RSS at the fork is what the call itself allocated.
    """
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        call()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read)
            torch.set_num_threads(1)  # the parent's OpenMP pool does not survive fork()
            base = _rss_kib()
            call()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            os.write(write, str(max(0, peak - base) / 1024.0).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    os.waitpid(pid, 0)
    if not text:
        raise RuntimeError("memory probe: the forked child reported nothing")
    return float(text)


def flop_report(model_configs: dict[str, Any], prompt_len: int, question_len: int, localizer_len: int) -> dict[str, Any]:
    """FLOPs per question of every variant's forward steps: at the trained (tiny) size with these prompt lengths,
    and at Flan-T5-XL size (meta device) with InstructBLIP's ~48 T5 and ~16 Q-Former tokens for these questions
    (the Localizer's prompt: the same 48 plus the difference of its suffix here)."""
    from vila.models.flops import flops_table
    from vila.models.presets import backbone_config

    xl_localizer = 48 + localizer_len - prompt_len
    return {"tiny": flops_table(model_configs, prompt_len, question_len, device="cpu", localizer_tokens=localizer_len),
            "flant5xl": flops_table(model_configs, 48, 16, device="meta", localizer_tokens=xl_localizer,
                                    backbone=backbone_config("flant5xl").to_dict())}


def run(params: dict[str, Any]) -> None:
    from vila.models.build import load_model

    paths = Paths.from_params(params)
    cfg = params["speed"]
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(params["seed"])
    total = params["data"]["frames"]
    names = model_names(params)
    qa = load_split(paths, params["evaluate"]["split"], frames=True)
    from vila.models.flops import design_key

    models = {name: load_model(paths.model(name)) for name in names}
    # Models of one design (they differ in how they were trained: ablations, the relevance extension) cost the same:
    # one of each is timed, and the others carry its figures ("timed_as").
    first: dict[str, str] = {}
    timed_as = {name: first.setdefault(design_key(model.config), name) for name, (model, _) in models.items()}
    timed = [name for name in names if timed_as[name] == name]
    largest = max(cfg["batch_sizes"])
    latency: dict[str, dict[str, dict[str, float]]] = {name: {} for name in timed}
    rounds: dict[str, list[float]] = {}  # the largest batch's times, round by round (every model once per round)
    for bs in tqdm(cfg["batch_sizes"], desc="speed: end to end, designs in turn"):
        calls = {name: end_to_end(models[name][0], batcher(models[name][1], qa, models[name][0]).batch(
            np.arange(bs), None, features=False, frames=True), total) for name in timed}
        for name, times in time_interleaved(calls, cfg["warmup"], cfg["repeats"]).items():
            latency[name][str(bs)] = {"median": statistics.median(times), "p90": float(np.percentile(times, 90))}
            if bs == largest:
                rounds[name] = times
    breakdown: dict[str, dict[str, float]] = {}
    for name in tqdm(timed, desc="speed: per-component breakdown"):
        model, tok = models[name]
        batch = batcher(tok, qa, model).batch(np.arange(largest), None, features=False, frames=True)
        breakdown[name] = {part: statistics.median(time_call(fn, cfg["warmup"], cfg["breakdown_repeats"]))
                           for part, fn in step_calls(model, batch, total).items()}
    latency = {name: latency[timed_as[name]] for name in names}
    rounds = {name: rounds[timed_as[name]] for name in names}
    breakdown = {name: breakdown[timed_as[name]] for name in names}
    # The paper's claims are against SeViLA (sevila_4f); the uniform 32-frame model is the other reference.
    refs = [r for r in references(params) if r in latency]
    speedup = {speedup_key(n, ref): latency[ref][str(largest)]["median"] / latency[n][str(largest)]["median"]
               for ref in refs for n in names if n != ref}
    # The run-to-run spread of a ratio: the middle 95% of its per-round ratios (each round times every model once,
    # in turn, so a slow spell of the machine lands on both); a rerun's median ratio falls inside it.
    spread = {speedup_key(n, ref): [float(x) for x in np.percentile(
                  np.asarray(rounds[ref]) / np.asarray(rounds[n]), [2.5, 97.5])]
              for ref in refs for n in names if n != ref}
    tok = models[names[0]][1]
    sample = Batcher(tok, qa, localizer=True).batch(np.arange(min(len(qa), 64)), None, features=False)
    lengths = {k: int(sample[f"{k}_mask"].sum(1).float().mean().round()) for k in ("attention", "qformer", "localizer")}
    flops = flop_report({n: m.config for n, (m, _) in models.items()}, lengths["attention"], lengths["qformer"],
                        lengths["localizer"])
    memory = {}
    for n in tqdm(timed, desc="speed: peak memory"):
        model, tok = models[n]
        batch = batcher(tok, qa, model).batch(np.arange(largest), None, features=False, frames=True)
        memory[n] = peak_memory_mb(end_to_end(model, batch, total))
    memory = {name: memory[timed_as[name]] for name in names}
    result = {
        "device": f"cpu ({platform.processor() or platform.machine()}, torch {torch.__version__})",
        "threads": torch.get_num_threads(),
        "batch_sizes": cfg["batch_sizes"],
        "repeats": cfg["repeats"],
        "warmup": cfg["warmup"],
        "timed": TIMED,
        "latency_ms": latency,
        "breakdown_ms": breakdown,
        "breakdown_batch_size": largest,
        "breakdown_repeats": cfg["breakdown_repeats"],
        "flops": {preset: {n: parts["total"] for n, parts in table.items()} for preset, table in flops.items()},
        "flops_breakdown": flops,
        "peak_memory_mb": memory,
        "peak_memory_note": f"peak memory added by one batch-{largest} end-to-end call (CPU: RSS of a forked child)",
        "speedup": speedup,
        "speedup_range95": spread,
        "timed_as": {n: t for n, t in timed_as.items() if n != t},
        "speedup_note": f"<variant>_vs_<reference>: median end-to-end latency of the reference ({', '.join(refs)}) / "
                        f"the variant's, at batch {largest}, timed in the same interleaved run; {TIMED}",
        "cpu_count": os.cpu_count(),
    }
    write_json(paths.speed_json, result)
    for n in names:
        lat = latency[n][str(largest)]["median"]
        ratios = ", ".join(f"{speedup[speedup_key(n, r)]:.2f}x vs {r}" for r in refs if r != n)
        fl = flops["flant5xl"][n]["total"] / 1e12
        log.info("speed %-22s batch %d: %8.1f ms median (%s; end to end); flant5xl %.2f TFLOPs/question",
                 n, largest, lat, ratios or "reference", fl)
    log.info("speed: timed = %s", TIMED)
