"""`vila`: the command line. It parses, then runs a stage's entry point (vila/pipeline/stages.py) after the
run-time setup (vila/runtime.py), holding the workspace's runner lock (vila/pipeline/runner.py) and turning any error
into one line; it changes no output, so no stage depends on this file.

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
from pathlib import Path
from typing import Any

from vila.data.registry import DATASETS, REAL
from vila.paths import FULLSIZE_SPEED, LOGS_DIR
from vila.pipeline.runner import HOLDER_ENV, WorkspaceBusy, describe, hold_workspace
from vila.pipeline.stages import stage_by_name


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
    if "DVC_STAGE" in os.environ and "model.weights" in stage.params:  # run by `dvc repro`
        from vila.pipeline.dvcfile import weights_dependency_missing

        if why := weights_dependency_missing(params, Path(os.environ.get("DVC_ROOT", "."))):
            raise SystemExit(f"vila {name}: {why}")
    setup(params, stage.uses_torch, stage.threads)
    if distributed:
        from vila.device import setup_distributed

        setup_distributed()  # joins torchrun's process group when launched by torchrun
    if stage.notebooks:  # the notebooks reload the params file the command was given
        kwargs["params_file"] = args.params
    _call(stage.entry, params, **kwargs)


def command_parts(cmd: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """A stage command (template or concrete) -> (its words, its options): `vila train teacher --frames 4` ->
    (("train", "teacher"), {"frames": "4"}). Every option takes a value, named as the entry point's argument."""
    tokens = cmd.split()[1:]
    words = tuple(t for t in tokens[: next((i for i, t in enumerate(tokens) if t.startswith("--")), len(tokens))])
    rest = tokens[len(words):]
    return words, {k.removeprefix("--").replace("-", "_"): v for k, v in zip(rest[::2], rest[1::2], strict=True)}


def stage_commands() -> dict[tuple[str, ...], list[Any]]:
    """The stage list's commands by their words (the seed study's twins are the same commands at --seed)."""
    from vila.pipeline.stages import ALL_STAGES

    commands: dict[tuple[str, ...], list[Any]] = {}
    for stage in ALL_STAGES:
        if not stage.base:
            commands.setdefault(command_parts(stage.cmd)[0], []).append(stage)
    return commands


def cmd_stage(args: argparse.Namespace) -> None:
    """Find the stage job whose command this is (the stage list, expanded with the params: `vila evaluate --variant
    uniform_4f` is evaluate_teacher's job at frames 4) and run its entry point with the command's options."""
    from vila.config import load_params
    from vila.pipeline.stages import fill_params, job_values

    params = load_params(args.params)
    given = {k: str(v) for k, v in vars(args).items() if k in args.options and v is not None}
    known = []
    for stage in stage_commands()[args.words]:
        for values in job_values(params, stage):
            concrete = fill_params(stage.cmd, params).format(**values)
            options = command_parts(concrete)[1]
            if options == given:
                kwargs = {k: int(v) if v.isdigit() else v for k, v in options.items()}
                run_stage(stage.name, args, distributed=args.words[0] == "train", **kwargs)
                return
            known.append(concrete)
    asked = " ".join(["vila", *args.words, *(f"--{k.replace('_', '-')} {v}" for k, v in given.items())])
    raise SystemExit(f"{asked}: not a job of the stage list under {args.params}; its jobs: {', '.join(sorted(known))}")


def add_stage_commands(sub: Any) -> None:
    """`vila <words> [--option value ...]` for every stage of the stage list: a command's options are its stages'
    (an int where the stage list fills a number), its help their help (or their names)."""
    groups: dict[str, dict[tuple[str, ...], list[Any]]] = {}
    for words, stages in stage_commands().items():
        groups.setdefault(words[0], {})[words] = stages
    for first, commands in groups.items():
        stages = [st for group in commands.values() for st in group]
        helps = {st.help for st in stages if st.help}
        p = sub.add_parser(first, help=helps.pop() if len(helps) == 1 else "one of: " + ", ".join(st.name for st in stages),
                           description="\n".join(f"{st.name}: {st.help}" for st in stages),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        kinds = sorted(w[1] for w in commands if len(w) > 1)
        if kinds:
            p.add_argument("kind", choices=kinds)
        options: dict[str, bool] = {}
        for st in stages:
            for name, value in command_parts(st.cmd)[1].items():
                numeric = value.strip("{}") in ("frames", "keyframes", "budget") or value.isdigit()
                options[name] = options.get(name, True) and numeric
        for name, numeric in sorted(options.items()):
            p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int if numeric else str)
        p.set_defaults(func=cmd_stage, options=set(options), first=first, kinds=bool(kinds))


def cmd_convert(args: argparse.Namespace) -> None:
    _call("vila.data.convert:convert_cli", args.dataset, args.src, args.out)


def cmd_score(args: argparse.Namespace) -> None:
    _call("vila.data.metrics:score_cli", args.dataset, args.annotations, args.predictions)


def cmd_speed_full(args: argparse.Namespace) -> None:
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
    from vila.training.fingerprint import fingerprint_code, numerics_fingerprint

    print(json.dumps({**capability(), "fingerprint": numerics_fingerprint(), "code": fingerprint_code()},
                     sort_keys=True))


def cmd_readme(args: argparse.Namespace) -> None:
    from vila.config import load_params

    _call("vila.reports.readme:write_readme", load_params(args.params))


def cmd_pipeline(args: argparse.Namespace) -> None:
    _call("vila.pipeline.dvcfile:write_dvc_yaml", args.params, args.check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vila", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=os.environ.get("VILA_PARAMS", "params.yaml"),
                        help="params file (default: $VILA_PARAMS, which Snakemake sets to its merged configuration "
                             "when --config/--configfile override params.yaml; else params.yaml)")
    parser.add_argument("--seed", type=int, default=None,
                        help="train/evaluate at this seed of the seed study (outputs under study/seeds/SEED/)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_stage_commands(sub)  # every stage of the stage list (vila/pipeline/stages.py)
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
    p.add_argument("--out", default=str(FULLSIZE_SPEED))
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


def save_traceback(command: str) -> Path:
    """Write the exception being handled to logs/tracebacks/ (the temp folder where that cannot be written)."""
    import tempfile
    import traceback

    name = f"vila-{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    for folder in (LOGS_DIR / "tracebacks", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(traceback.format_exc())
            return folder / name
        except OSError:
            continue
    return Path("(not saved)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    runner_lock = None
    if getattr(args, "func", None) is cmd_stage:
        args.words = (args.first, args.kind) if args.kinds else (args.first,)
        # Not a job of a Snakemake run (it holds the workspace for its jobs), nor a rank of a torchrun launch
        # other than the first (the launcher of `vila train` holds it for its ranks; a hand-run torchrun: rank 0).
        if HOLDER_ENV not in os.environ and os.environ.get("RANK", "0") == "0":
            try:
                runner_lock = hold_workspace(describe(" ".join(["vila", *argv])))
            except WorkspaceBusy as e:
                print(f"vila {args.command}: error (WorkspaceBusy): {e}", file=sys.stderr)
                return 2
    try:
        return run_command(args, argv)
    finally:
        if runner_lock is not None:  # released now (a caller in this process, e.g. a test, runs on unlocked)
            runner_lock.close()
            os.environ.pop(HOLDER_ENV, None)


def run_command(args: argparse.Namespace, argv: list[str]) -> int:
    """Run the parsed command; its errors as one line on stderr (exit status 2: bad input, 1: anything else)."""
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
    except (ValueError, OSError, KeyError) as e:  # ours, and the file system's: the message names the key or file
        from vila.config import ParamsError

        label = "params" if isinstance(e, ParamsError) else type(e).__name__
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"vila {args.command}: error ({label}): {msg}", file=sys.stderr)
        return 2
    except Exception as e:
        # Anything else comes from deep inside a library: one line here, the whole traceback in a file (-v: raised).
        if args.verbose:
            raise
        saved = save_traceback(args.command)
        first = str(e).strip().splitlines()[0] if str(e).strip() else "(no message)"
        print(f"vila {args.command}: error ({type(e).__name__}): {first} [traceback: {saved}; rerun with -v to see "
              "it here]", file=sys.stderr)
        return 1
    logging.getLogger("vila").info("vila %s finished in %.1f s", args.command, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
