"""`vila`: the command line. It parses, then runs a stage's entry point (vila/pipeline/stages.py) after the
run-time setup (vila/runtime.py), and does nothing else: no stage depends on this file.

Heavy libraries (torch, transformers, peft) are imported inside the commands that need them, so
`vila --help` and Snakemake/DVC dry runs stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from typing import Any

from vila.data.registry import DATASETS, REAL
from vila.pipeline.stages import plain_commands, stage_by_name


def _call(target: str, *args: Any, **kwargs: Any) -> Any:
    """`module:function`(*args, **kwargs)."""
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)(*args, **kwargs)


def run_stage(name: str, args: argparse.Namespace, distributed: bool = False, **kwargs: Any) -> None:
    """The stage's entry point, called with the params (at --seed's seed) and the command's arguments, after the
    run-time setup. A stage whose outputs every seed shares refuses --seed (it would overwrite Table 1's).
    distributed: join torchrun's process group (after the setup: the CPU pins come before torch is imported)."""
    from vila.config import at_seed, load_params
    from vila.runtime import setup

    stage = stage_by_name(name)
    if args.seed is not None and not stage.seeded:
        raise SystemExit(f"vila --seed: `{name}` does not depend on the training seed (its outputs are shared by every "
                         "seed of the study); run it without --seed")
    params = at_seed(load_params(args.params), args.seed)
    setup(params, stage.uses_torch, stage.threads)
    if distributed:
        from vila.device import setup_distributed

        setup_distributed()  # joins torchrun's process group when launched by torchrun
    if stage.notebooks:  # the notebooks reload the params file the command was given
        kwargs["params_file"] = args.params
    _call(stage.entry, params, **kwargs)


# `vila train KIND` -> (stage, the argument its entry point takes, if any)
TRAIN_KINDS = {"teacher": ("teacher", "frames"), "student": ("student", "variant"),
               "uniform-answerer": ("uniform_answerer", None), "localizer": ("localizer", None),
               "answerer": ("answerer", "frames"), "reader": ("reader", "k")}


def cmd_train(args: argparse.Namespace) -> None:
    stage, arg = TRAIN_KINDS[args.kind]
    value = {"frames": args.frames, "k": args.frames, "variant": args.variant}.get(arg) if arg else None
    if arg and value is None:
        raise SystemExit(f"vila train {args.kind}: --{'variant NAME' if arg == 'variant' else 'frames N'} is required")
    run_stage(stage, args, distributed=True, **({arg: value} if arg else {}))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from vila.config import EVALUATE_STAGE, load_params, model_kinds

    kinds = model_kinds(load_params(args.params))
    if args.variant not in kinds:
        raise SystemExit(f"vila evaluate: --variant {args.variant}: not a model of {args.params} "
                         f"(have: {', '.join(kinds)})")
    run_stage(EVALUATE_STAGE[kinds[args.variant]], args, variant=args.variant)


def cmd_sevila(args: argparse.Namespace) -> None:
    if args.uniform_answerer:
        run_stage("sevila_uniform_answerer", args)
    else:
        run_stage("sevila", args, frames=args.frames)


def cmd_scores(args: argparse.Namespace) -> None:
    run_stage("scores", args, source=args.source)


def cmd_select(args: argparse.Namespace) -> None:
    run_stage("select", args, selector=args.selector, k=args.frames)


def cmd_plain(name: str) -> Any:
    return lambda args: run_stage(name, args)


def cmd_convert(args: argparse.Namespace) -> None:
    _call("vila.data.convert:convert_cli", args.dataset, args.src, args.out)


def cmd_score(args: argparse.Namespace) -> None:
    _call("vila.data.metrics:score_cli", args.dataset, args.annotations, args.predictions)


def cmd_speed_full(args: argparse.Namespace) -> None:
    from pathlib import Path

    from vila.speed.fullsize import NoGPU, run

    try:
        run(args.batch_sizes, args.repeats, args.warmup, Path(args.out), args.train_batch_size)
    except NoGPU as e:
        print(e, file=sys.stderr)
        raise SystemExit(3) from None


def cmd_cpu(args: argparse.Namespace) -> None:
    import json

    from vila.config import load_params
    from vila.runtime import setup

    setup(load_params(args.params), uses_torch=True, threads=None)
    from vila.cpu import capability
    from vila.training.backbone import numerics_fingerprint

    print(json.dumps({**capability(), "fingerprint": numerics_fingerprint()}, sort_keys=True))


def cmd_readme(args: argparse.Namespace) -> None:
    from vila.config import load_params

    _call("vila.reports.readme:write_readme", load_params(args.params))


def cmd_pipeline(args: argparse.Namespace) -> None:
    _call("vila.pipeline.dvcfile:write_dvc_yaml", args.params, args.check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vila", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--seed", type=int, default=None,
                        help="train/evaluate at this seed of the seed study (outputs under study/seeds/SEED/)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, stage in plain_commands().items():  # the stage list's plain `vila <name>` stages
        sub.add_parser(name, help=stage.help).set_defaults(func=cmd_plain(name))
    p = sub.add_parser("train", help="train a uniform-N teacher, a ViLA student variant, SeViLA's Answerers and "
                       "Localizer, or the selection study's reader")
    p.add_argument("kind", choices=list(TRAIN_KINDS))
    p.add_argument("--frames", type=int, help="teacher: uniformly sampled frames N; answerer: SeViLA's k; "
                   "reader: the selection budget k")
    p.add_argument("--variant", help="student: a key of `variants` in params.yaml")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", help="accuracy per type, key-frame recall, chosen frames of one variant")
    p.add_argument("--variant", required=True, help="a model of params.yaml: uniform_<N>f, a student variant, "
                   "sevila_<k>f, sevila_4f_uniform_answerer")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("sevila", help="sevila_<k>f: SeViLA's k-frame Answerer with the trained Localizer")
    p.add_argument("--frames", type=int, required=True, help="k, one of sevila.frames")
    p.add_argument("--uniform-answerer", action="store_true",
                   help="the ablation sevila_4f_uniform_answerer: the uniform-trained Answerer reads the Localizer's frames")
    p.set_defaults(func=cmd_sevila)
    p = sub.add_parser("scores", help="per-frame relevance scores of val/test from one source (selection.scorers)")
    p.add_argument("--source", required=True, help="backbone (its image-text match), sevila_<k>f or a ViLA variant")
    p.set_defaults(func=cmd_scores)
    p = sub.add_parser("select", help="one selector's k frames per test question, read by the shared reader_<k>f")
    p.add_argument("--selector", required=True, help="one of selection.selectors")
    p.add_argument("--frames", type=int, required=True, help="k, one of selection.frames")
    p.set_defaults(func=cmd_select)
    p = sub.add_parser("convert", help="official annotation files -> unified JSON lists, one per split")
    p.add_argument("dataset", choices=REAL)
    p.add_argument("--src", required=True, help="folder with the official files under their official names")
    p.add_argument("--out", required=True, help="output folder for {train,val,test}.json")
    p.set_defaults(func=cmd_convert)
    p = sub.add_parser("score", help="accuracy overall and per category of a predictions file")
    p.add_argument("dataset", choices=list(DATASETS))
    p.add_argument("--annotations", required=True, help="unified-format JSON list")
    p.add_argument("--predictions", required=True, help="JSON object qid -> predicted option index")
    p.set_defaults(func=cmd_score)
    p = sub.add_parser("speed-full", help="full-size (Flan-T5-XL) latency with random weights on a CUDA GPU")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--train-batch-size", type=int, default=8, help="batch of the timed full-size training step")
    p.add_argument("--out", default="results/fullsize/speed.json")
    p.set_defaults(func=cmd_speed_full)
    p = sub.add_parser("cpu", help="the CPU kernels torch uses under cpu_isa, and a fingerprint of their numerics")
    p.set_defaults(func=cmd_cpu)
    p = sub.add_parser("readme", help="rewrite README.md's results block from results/ (after a reproduce)")
    p.set_defaults(func=cmd_readme)
    p = sub.add_parser("pipeline", help="write dvc.yaml, study/dvc.yaml and selection/dvc.yaml from the stage list")
    p.add_argument("--check", action="store_true", help="fail if dvc.yaml differs from the stage list")
    p.set_defaults(func=cmd_pipeline)
    return parser


def processes_per_node() -> int:
    """Training processes to launch: `VILA_NPROC_PER_NODE`, else the GPUs SLURM gave this job, else 1."""
    value = os.environ.get("VILA_NPROC_PER_NODE") or os.environ.get("SLURM_GPUS_ON_NODE") or "1"
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"vila: VILA_NPROC_PER_NODE/SLURM_GPUS_ON_NODE must be a positive integer, got {value!r}")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.command == "train" and "LOCAL_RANK" not in os.environ and (nproc := processes_per_node()) > 1:
        # One process per GPU the scheduler allotted: the same command under torchrun, so Snakemake and DVC
        # keep one command line whatever the node size.
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        os.execv(sys.executable, [*torchrun, "-m", "vila.cli", *argv])
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    started = time.perf_counter()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as e:
        from vila.config import ParamsError

        label = "params" if isinstance(e, ParamsError) else type(e).__name__
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"vila {args.command}: error ({label}): {msg}", file=sys.stderr)
        return 2
    logging.getLogger("vila").info("vila %s finished in %.1f s", args.command, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
