"""Command line: `python -m charrnn train | generate | export ...`.

Only argument parsing lives here; the work is done by `charrnn.train`,
`charrnn.generate` and `charrnn.export`. `train` runs what notebook 02 (or 03,
with `--set stateful=true`) runs: `TrainConfig.from_preset(--preset, **--set)`;
it is the entry point for schedulers and for every multiworker worker.

Bad arguments, a missing run or unusable prompt end with one line on stderr
and exit code 2, as argparse does. TensorFlow's start-up logs are hidden unless
`--verbose`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback

from charrnn.quiet import start_tensorflow


def _wants_verbose(argv: list[str]) -> bool:
    """--verbose anywhere in argv, read before the full parser (which imports TensorFlow)."""
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    early.add_argument("--verbose", action="store_true")
    return early.parse_known_args(argv)[0].verbose


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage block) that point to --help."""

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (0 = greedy), got {text}")
    return value


def _generate(args) -> None:
    from charrnn.generate import generate_from_run

    samples = generate_from_run(
        args.run, args.prompt, args.n_chars, args.temperature, num_samples=args.num_samples,
        top_k=args.top_k, seed=args.seed, checkpoint=args.checkpoint, drop_unknown=args.drop_unknown,
    )
    for number, text in enumerate(samples, start=1):
        if len(samples) > 1:
            print(f"=== sample {number} ===")
        print(text)


def training_config(args):
    """The TrainConfig of `train`'s arguments: the preset, then --set, then --run."""
    from charrnn.config import TrainConfig, check_value, parse_settings

    settings = parse_settings(args.set)
    for key, flag in (("dataset_name", "--dataset"), ("preset", "--preset"), ("run_name", "--run")):
        if key in settings:
            raise ValueError(f"--set {key}=...: give it as {flag} NAME instead")
    stateful = check_value("stateful", bool, settings.pop("stateful", False))
    run_name = args.run or ("stateful" if stateful else "stateless")  # the notebooks' run names
    return TrainConfig.from_preset(args.preset, stateful=stateful, run_name=run_name, **settings)


def _train(args) -> None:
    from charrnn.config import plain_name
    from charrnn.corpus import OUTPUTS_DIR
    from charrnn.data import load_prepared

    if not plain_name(args.dataset):
        raise ValueError(f"--dataset must be a folder name under outputs/data/, got {args.dataset!r}")
    config = training_config(args)  # bad options fail here, before training starts
    from charrnn.train import train

    prepared = load_prepared(OUTPUTS_DIR / "data" / args.dataset)
    print(config, flush=True)
    try:
        _, history = train(config, prepared, OUTPUTS_DIR / "runs")
    except Exception as err:
        if config.strategy != "multiworker":
            raise
        # A worker whose peer died cannot exit normally: TensorFlow's shutdown waits for every
        # worker of the cluster. Report and leave now, so a scheduler can restart the cluster.
        user_error = isinstance(err, (FileNotFoundError, FileExistsError, ValueError))
        if user_error:
            print(f"python -m charrnn train: error: {err}", file=sys.stderr)
        else:
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2 if user_error else 1)
    if history.get("val_loss"):
        print(f"Run {OUTPUTS_DIR / 'runs' / config.run_name}: {len(history['val_loss'])} epochs, "
              f"final val_loss {history['val_loss'][-1]:.4f}")


def _export(args) -> None:
    from charrnn.export import export_run

    path = export_run(args.run, args.out, checkpoint=args.checkpoint, overwrite=args.overwrite)
    print(f"Exported the generator to {path}: tf.saved_model.load({str(path)!r}).generate(...)")


def build_parser() -> argparse.ArgumentParser:
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    parser = _OneLineErrorParser(
        prog="python -m charrnn",
        description="Train a Char-RNN run, generate text from one, or export its generator.",
    )
    commands = parser.add_subparsers(required=True, metavar="{train,generate,export}")
    for name, add, command, summary in (
        ("train", _train_arguments, _train,
         "train a run as notebook 02 (or 03 with --set stateful=true) does; the workers' entry point"),
        ("generate", _generate_arguments, _generate, "continue a prompt with a trained run"),
        ("export", _export_arguments, _export,
         "save a run's generator as a SavedModel (strings in, strings out)"),
    ):
        subparser = commands.add_parser(name, parents=[verbose], help=summary)
        add(subparser)
        subparser.set_defaults(command=command, command_parser=subparser)
    return parser


def _train_arguments(train) -> None:
    train.description = ("Train into $CHARRNN_OUTPUTS/runs/<run_name> from the prepared data of --dataset, "
                         "with TrainConfig's defaults, the preset's values and --set on top. Resumes an "
                         "unfinished run of the same name.")
    train.add_argument("--preset", default="geron", help="training recipe configs/<name>.yaml (geron)")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="any TrainConfig field (a YAML value), repeatable: --set epochs=3 --set tensorboard=true",
    )
    train.add_argument("--dataset", default="tinyshakespeare",
                       help="prepared data under outputs/data/ (tinyshakespeare)")
    train.add_argument("--run", help="run name (default: stateless, or stateful)")


def _generate_arguments(generate) -> None:
    from charrnn.runs import BEST_FILE, MODEL_FILE

    generate.description = "Print the prompt followed by generated characters (the state-carrying generator)."
    generate.add_argument("--run", required=True, help="run folder, e.g. outputs/runs/stateful")
    generate.add_argument("--prompt", required=True, help="text to continue (characters of the vocabulary)")
    generate.add_argument("--n-chars", type=_non_negative_int, default=500, help="characters to add (500)")
    generate.add_argument(
        "--temperature", type=_temperature, default=1.0, help="0 = greedy, 1 = the model's odds (1.0)"
    )
    generate.add_argument("--seed", type=_non_negative_int, help="for reproducible samples (default: random)")
    generate.add_argument("--num-samples", type=_positive_int, default=1, help="samples to print (1)")
    generate.add_argument("--top-k", type=_positive_int, help="sample among the k likeliest characters only")
    generate.add_argument("--checkpoint", default=MODEL_FILE,
                          help=f"model file in the run folder ({MODEL_FILE}; or {BEST_FILE})")
    generate.add_argument(
        "--drop-unknown", action="store_true",
        help="skip prompt characters outside the vocabulary (default: an error, or the unknown id "
             "when the data was prepared with min_count / max_vocab)",
    )


def _export_arguments(export) -> None:
    from charrnn.runs import BEST_FILE, MODEL_FILE

    export.description = "Export the generator as a SavedModel usable with TensorFlow alone."
    export.add_argument("--run", required=True, help="run folder, e.g. outputs/runs/stateful")
    export.add_argument("--out", required=True, help="SavedModel folder to write")
    export.add_argument("--checkpoint", default=MODEL_FILE,
                        help=f"model file in the run folder ({MODEL_FILE}; or {BEST_FILE})")
    export.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not _wants_verbose(argv):
        start_tensorflow()  # before anything imports TensorFlow, build_parser included
    args = build_parser().parse_args(argv)
    try:
        args.command(args)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        # Expected user errors (missing run, bad prompt, ...): one line, no traceback.
        args.command_parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
