"""``explain-distill``: run | audit | report | label.

Progress and timings go to stderr, the path of what was written to stdout, so
``open "$(explain-distill run --dataset digits)"`` works.  Exit codes: 0 success (audit passed),
1 audit failed, 2 usage or input error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

logger = logging.getLogger("explain_distill.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _build_parser() -> argparse.ArgumentParser:
    from .data import DATASETS

    parser = argparse.ArgumentParser(
        prog="explain-distill",
        description="Distill a neural network into explainable surrogates and measure their fidelity.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", metavar="{run,audit,report,label}")
    sub.required = True
    _run_parser(sub, DATASETS)
    _audit_parser(sub)
    _report_parser(sub)
    _label_parser(sub, DATASETS)
    return parser


def _run_parser(sub: Any, datasets: Sequence[str]) -> None:
    """``run``: the data, the teacher, the surrogates and the report."""
    run = sub.add_parser(
        "run",
        help="train a teacher, distill surrogates, analyse them and write an HTML report",
        description="Train a teacher, distill it into surrogates, analyse them and write DIR/index.html, "
        "DIR/metrics.json and the saved run (DIR/model).",
    )
    src = run.add_mutually_exclusive_group()
    src.add_argument("--dataset", choices=datasets, help="a built-in data set (default: digits)")
    src.add_argument("--csv", type=Path, help="a CSV file with a header row")
    _csv_args(run)
    run.add_argument(
        "--out", type=Path,
        help="output directory (default: reports/<dataset>); must be new, empty, or an earlier run's output",
    )
    run.add_argument(
        "--teacher", type=Path, metavar="FILE",
        help="distill your own network instead of training one: a torch.export archive (.pt2) or a TorchScript file "
        "(.pt); its outputs must be the data's classes in sorted order. Pickled checkpoints are refused",
    )
    run.add_argument("--input-shape", metavar="C,H,W",
                     help="the shape of one sample as the network takes it, e.g. 1,28,28 (default: what the file "
                     "records; a CSV with that many pixel columns is then read as images)")
    run.add_argument("--scale", choices=("feature", "global", "none"),
                     help="how --csv columns are scaled before the network sees them (default: feature; none with "
                     "--teacher, which receives the values as they are)")
    run.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the teacher trains (default: auto)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument("--temperature", type=float, default=4.0, help="soft-label temperature T (default: 4)")
    run.add_argument("--surrogates", help="comma-separated registry names (default: all registered); NAME@patterns "
                     "fits NAME over the teacher's pattern detectors, e.g. tree@patterns")
    run.add_argument("--features", choices=("auto", "patterns", "none"), default="auto",
                     help="surrogates over the teacher's pattern detectors (a convolutional layer's channels): 'auto' "
                     "adds tree/rules/logistic@patterns for a convolutional teacher when --surrogates is not given, "
                     "'patterns' always, 'none' never (default: auto)")
    run.add_argument("--feature-layer", help="teacher module whose channels are the patterns (default: the last convolution)")
    run.add_argument(
        "--min-agreement", type=float, default=0.9,
        help="the fidelity bar (default 0.9): per readable family (tree, rules, soft_tree, ...) pick the smallest "
        "size whose 95%% interval on a validation split clears it, lead the report with it, and show pass/fail",
    )
    _gate_args(run)
    run.add_argument("--tree-depth", type=int, help="depth of the tree surrogate (same as --param tree.max_depth=N)")
    run.add_argument("--max-rules", type=int, help="rules in the rule list (same as --param rules.max_rules=N)")
    run.add_argument(
        "--param", action="append", default=[], metavar="NAME.KEY=VALUE",
        help="a surrogate hyper-parameter, e.g. --param tree.max_leaf_nodes=32 --param soft_tree.depth=6 (repeatable)",
    )


def _csv_args(run: argparse.ArgumentParser) -> None:
    """How ``run`` reads a ``--csv`` file: its target, missing cells, columns, delimiter, encoding and decimal mark."""
    run.add_argument("--target", help="label column of --csv")
    run.add_argument(
        "--missing", default="error", choices=("error", "drop", "impute"),
        help="missing values in --csv (empty cells, NA, N/A, ?, null, -, None, #N/A, ...): error names them "
        "(default), drop drops their rows, impute fills them with the training split's median",
    )
    run.add_argument(
        "--max-categories", type=int, default=50,
        help="refuse a text column of --csv with more distinct values than this (an id or free text; default 50)",
    )
    run.add_argument("--delimiter", help="the field delimiter of --csv (default: sniffed among , ; tab |)")
    run.add_argument("--encoding", help="the encoding of --csv (default: UTF-8, with or without BOM, then cp1252)")
    run.add_argument("--decimal", choices=(".", ","),
                     help="the decimal mark of --csv (default: ',' when the delimiter is not a comma and a column holds "
                     "numbers such as 3,14; else '.')")
    run.add_argument(
        "--max-classes", type=int,
        help="the most classes --target may have (default: refuse a numeric target that looks continuous: many "
        "distinct values for the rows, or not whole numbers)",
    )
    run.add_argument(
        "--keep-column", action="append", default=[], metavar="NAME",
        help="keep this numeric column of --csv although it looks like a row id (different on every row and "
        "ordered like the file); repeatable",
    )


def _audit_parser(sub: Any) -> None:
    """``audit``: the CI gate on a saved run."""
    aud = sub.add_parser(
        "audit",
        help="check a saved run's surrogates against a fidelity bar (exit 1 when not met)",
        description="Gate on fidelity: the lower end of the 95% Wilson interval of top-1 agreement "
        "between teacher and surrogate on the test split must reach --min-agreement. The teacher is "
        "compared with a majority-class and a logistic baseline on the same split; a teacher that does "
        "not beat them is reported (and fails the gate with --require-teacher-better-than-baseline). "
        "Exit 0 when every audited surrogate passes, 1 when one fails, 2 on a usage error.",
    )
    aud.add_argument("run_dir", type=Path, help="a directory written by `explain-distill run`")
    aud.add_argument("--min-agreement", type=float,
                     help="the bar, in [0, 1] (default: the bar the run recorded, else 0.95)")
    _gate_args(aud)
    aud.add_argument("--surrogate", action="append", help="audit only this surrogate (repeatable)")
    aud.add_argument("--json", action="store_true", help="print JSON instead of a table")
    aud.add_argument(
        "--require-teacher-better-than-baseline", action="store_true",
        help="fail when the teacher's test accuracy is at or below the majority-class baseline or far below "
        "a logistic regression's (fidelity to a broken teacher says nothing)",
    )


def _report_parser(sub: Any) -> None:
    """``report``: re-render a saved run's page."""
    rep = sub.add_parser(
        "report",
        help="re-render the HTML report of a saved run, without retraining",
        description="Re-render RUN_DIR/index.html from the saved run (no retraining).",
    )
    rep.add_argument("run_dir", type=Path)
    rep.add_argument(
        "--out", type=Path,
        help="write the report here instead of RUN_DIR (must be new, empty, or an earlier output of this tool)",
    )
    rep.add_argument("--min-agreement", type=float, help="audit bar shown as pass/fail (default: the run's own)")


def _label_parser(sub: Any, datasets: Sequence[str]) -> None:
    """``label``: DDP training and sharded soft labels under torchrun."""
    from .parallel import DEFAULT_CHUNK_ROWS

    lab = sub.add_parser(
        "label",
        help="train the teacher with DDP and/or write the soft-labelled transfer set, one process per GPU",
        description="Run under torchrun (torchrun --nproc_per_node=N -m explain_distill.cli label ...): train the "
        "teacher with DistributedDataParallel and/or label the transfer set, each process one block of rows "
        "(nccl on CUDA, gloo on the CPU). Writes OUT/teacher and OUT/transfer (memory-mappable .npy + "
        "transfer.json), which explain_distill.parallel.open_transfer_shards reads back. Prints the index path.",
    )
    lab.add_argument("--dataset", choices=datasets, required=True, help="the built-in data set")
    lab.add_argument(
        "--out", type=Path, required=True,
        help="output directory; must be new, empty, or an earlier output of `label`",
    )
    lab.add_argument("--temperature", type=float, default=4.0, help="soft-label temperature T (default: 4)")
    who = lab.add_mutually_exclusive_group(required=True)
    who.add_argument("--train-teacher", action="store_true", help="train the teacher with DDP (saved to OUT/teacher)")
    who.add_argument("--teacher", type=Path, help="label with this saved teacher directory instead")
    lab.add_argument("--inputs", type=Path, help="a float .npy file (n, n_features) to label instead of the training split")
    lab.add_argument("--epochs", type=int, default=100, help="teacher training epochs (default: 100, early stopping)")
    lab.add_argument("--batch-size", type=int, default=64, help="training batch size per process (default: 64)")
    lab.add_argument("--seed", type=int, default=0)
    lab.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: cuda when present")
    lab.add_argument("--backend", default="auto", choices=("auto", "gloo", "nccl"), help="default: nccl on CUDA, gloo on the CPU")
    lab.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows labelled at once (bounds memory)")


def _gate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gate", choices=("per_class", "agreement"), default=None,
        help="how the bar is held: 'per_class' (default) passes when the lower end of the 95%% interval of agreement "
        "reaches it AND every class the teacher predicts on at least 10 rows is reproduced (the lower end of "
        "its agreement interval reaches --min-class-agreement), so a surrogate that ignores a class fails; "
        "'agreement' checks agreement alone",
    )
    parser.add_argument("--min-class-agreement", type=float, default=0.5,
                        help="the per-class floor of the per_class gate (default 0.5)")


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("explain_distill")
    root.handlers = [h for h in root.handlers if isinstance(h, logging.NullHandler)] + [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)


def _cmd_label(args: argparse.Namespace) -> int:
    import os

    from .parallel import run_distributed

    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:  # one voice for the job: the other ranks report only warnings
        logging.getLogger("explain_distill").setLevel(logging.WARNING)
    _check_positive_arg(args.temperature, "--temperature")
    index = run_distributed(
        args.dataset, args.out, train_teacher=args.train_teacher, teacher=args.teacher, inputs=args.inputs,
        temperature=args.temperature, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        device=args.device, backend=args.backend, chunk_rows=args.chunk_rows,
    )
    if rank == 0:
        print(index)
    return EXIT_OK


def _parse_value(text: str) -> Any:
    """A --param value: int, float, true/false, none, or the string itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _surrogate_params(args: argparse.Namespace, names: list[str]) -> dict[str, dict[str, Any]]:
    """--param NAME.KEY=VALUE, --tree-depth and --max-rules as distill's params, checked against the registry."""
    from .surrogates import SURROGATES

    pairs: list[tuple[str, str, Any, str]] = []
    for item in args.param:
        head, sep, value = item.partition("=")
        name, dot, key = head.partition(".")
        if not sep or not dot or not name.strip() or not key.strip():
            raise ValueError(f"--param takes NAME.KEY=VALUE, e.g. --param tree.max_depth=5; received {item!r}.")
        pairs.append((name.strip(), key.strip(), _parse_value(value), f"--param {item}"))
    if args.tree_depth is not None:
        pairs.append(("tree", "max_depth", args.tree_depth, f"--tree-depth {args.tree_depth}"))
    if args.max_rules is not None:
        pairs.append(("rules", "max_rules", args.max_rules, f"--max-rules {args.max_rules}"))
    params: dict[str, dict[str, Any]] = {}
    for name, key, value, flag in pairs:
        if name not in names:
            raise ValueError(f"{flag}: {name!r} is not among the surrogates of this run ({', '.join(names)}).")
        est = SURROGATES[name]()
        if key not in est.get_params(deep=False):
            raise ValueError(f"{flag}: {name} has no parameter {key!r}; it accepts {', '.join(sorted(est.get_params(deep=False)))}.")
        params.setdefault(name, {})[key] = value
    return params


#: The built-in data sets whose teacher is convolutional (images and signals): patterns need one.
_CONVOLUTIONAL = {"digits", "mnist1d", "digits28", "digits32_rgb"}


def _check_patterns_args(args: argparse.Namespace, names: list[str]) -> None:
    """Surrogates over the teacher's pattern detectors need a convolutional teacher: on tabular data
    (a CSV, breast_cancer, wine, iris) the teacher is an MLP and has none; refuse before training."""
    tabular = args.csv is not None or (args.dataset or "digits") not in _CONVOLUTIONAL
    asked = [n for n in names if n.endswith("@patterns")]
    if tabular and (asked or args.features == "patterns" or args.feature_layer):
        what = (f"--surrogates {','.join(asked)}" if asked else "--features patterns" if args.features == "patterns"
                else f"--feature-layer {args.feature_layer}")
        source = f"--csv {args.csv}" if args.csv is not None else f"--dataset {args.dataset}"
        raise ValueError(
            f"{what} needs a convolutional teacher (its channels are the patterns), but {source} is tabular and its "
            f"teacher is a multilayer perceptron with no convolution. Drop the NAME@patterns surrogates (or use "
            f"NAME@features with your own features in Python), or use image or signal data."
        )


def _delimiter(text: str | None) -> str | None:
    """--delimiter as one character: ``tab`` and ``\\t`` for a tab, ``semicolon`` for ``;``."""
    if text is None:
        return None
    named = {"tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ",", "pipe": "|"}
    return named.get(text.lower(), text)


def _check_positive_arg(value: float, flag: str) -> float:
    from ._validation import check_positive

    return check_positive(value, flag, upper=1e4)


def _check_run_args(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, Any]], Path]:
    """Every argument of ``run`` checked before any data is read or any teacher trained: (names, params, out)."""
    from ._device import resolve_device
    from ._io import check_output_dir
    from ._validation import check_fraction, check_int
    from .distill import resolve_surrogates

    if args.csv is not None:
        if not args.target:
            raise ValueError("--csv needs --target COLUMN naming the label column.")
        if not args.csv.is_file():
            raise FileNotFoundError(f"--csv {str(args.csv)!r} does not exist or is not a file; check the path.")
    elif args.target:
        raise ValueError("--target only applies with --csv.")
    elif (args.missing != "error" or args.max_categories != 50 or args.max_classes is not None or args.keep_column
          or args.delimiter or args.encoding or args.decimal or args.scale):
        raise ValueError("--missing, --max-categories, --max-classes, --keep-column, --delimiter, --encoding, "
                         "--decimal and --scale only apply with --csv.")
    if args.max_classes is not None:
        check_int(args.max_classes, "--max-classes", low=2)
    check_int(args.max_categories, "--max-categories", low=2)
    _check_positive_arg(args.temperature, "--temperature")
    if args.min_agreement is not None:
        check_fraction(args.min_agreement, "--min-agreement")
    check_fraction(args.min_class_agreement, "--min-class-agreement")
    names = resolve_surrogates(args.surrogates, what="--surrogates")
    params = _surrogate_params(args, names)
    resolve_device(args.device)
    _parse_shape(args.input_shape)
    if args.teacher is not None:
        from .teacher import network_format

        network_format(args.teacher)  # a pickle is refused here, before the data is read
        if args.feature_layer or args.features == "patterns" or any(n.endswith("@patterns") for n in names):
            raise ValueError(
                "--teacher FILE: pattern surrogates read the network's convolutional layers by hooking them, and an "
                "exported or TorchScript network has none to hook. Drop --features patterns, --feature-layer and the "
                "NAME@patterns surrogates, or distill the module itself in Python (ed.Teacher(net, ...))."
            )
    else:
        _check_patterns_args(args, names)
    name = args.csv.stem if args.csv is not None else (args.dataset or "digits")
    out = args.out or Path("reports") / name
    check_output_dir(out, what="--out directory", inputs=tuple(p for p in (args.csv, args.teacher) if p is not None))
    return names, params, out


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    """--input-shape ``1,28,28`` (or ``1x28x28``) as a tuple of positive ints."""
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        shape = ()
    if not shape or any(v < 1 for v in shape):
        raise ValueError(f"--input-shape takes positive integers such as 1,28,28; received {text!r}.")
    return shape


def _load_data(args: argparse.Namespace) -> Any:
    from .data import Dataset, load_dataset

    if args.csv is None:
        return load_dataset(args.dataset or "digits", seed=args.seed)
    scale = args.scale or ("none" if args.teacher is not None else None)
    if args.teacher is not None and args.scale is None:
        logger.info("--teacher: the network receives the CSV's values as they are (--scale none); pass --scale feature "
                    "if it was trained on standardised columns")
    return Dataset.from_csv(
        args.csv, target=args.target, seed=args.seed, missing=args.missing, max_categories=args.max_categories,
        max_classes=args.max_classes, keep_columns=args.keep_column, delimiter=_delimiter(args.delimiter),
        encoding=args.encoding, decimal=args.decimal, scale=scale, input_shape=_parse_shape(args.input_shape),
    )


def _check_feature_layer(args: argparse.Namespace, data: Any) -> None:
    """--feature-layer names a layer of the teacher about to be trained: checked on the untrained
    network (same architecture, built in milliseconds) before any training, listing its convolutions."""
    if not args.feature_layer or args.teacher is not None:
        return
    from .features import PatternFeatures
    from .teacher import Teacher, build_module, default_config

    config = default_config(data)
    if config.get("arch") != "cnn":
        return  # tabular data: refused earlier (_check_patterns_args)
    probe = Teacher(build_module(config), class_names=data.class_names, input_shape=data.input_shape, device="cpu")
    try:
        PatternFeatures(probe, layer=args.feature_layer)
    except ValueError as exc:
        raise ValueError(f"--feature-layer {args.feature_layer}: {exc}") from None


def _teacher(args: argparse.Namespace, data: Any, t0: float) -> Any:
    """The user's network from --teacher FILE (its outputs checked against the classes first), or a trained one."""
    from .teacher import Teacher, check_outputs, train_teacher

    if args.teacher is not None:
        shape = _parse_shape(args.input_shape) or (tuple(data.input_shape) if len(data.input_shape) > 1 else None)
        teacher = Teacher.from_file(args.teacher, class_names=data.class_names, input_shape=shape, device=args.device)
        check_outputs(teacher, data.X_test, what=f"the data {data.name!r}")
    else:
        teacher = train_teacher(data, device=args.device, seed=args.seed)
    acc = float((teacher.predict(data.X_test) == data.y_test).mean())
    logger.info("teacher: %s, %d params, test accuracy %.3f [%.1fs]",
                teacher.history.get("arch"), teacher.n_params, acc, time.perf_counter() - t0)
    return teacher


def _cmd_run(args: argparse.Namespace) -> int:
    from ._io import atomic_directory, write_json
    from .distill import distill
    from .report.html import write_report

    t0 = time.perf_counter()
    names, params, out = _check_run_args(args)  # every argument, before any data is read or any teacher trained
    data = _load_data(args)
    logger.info("data: %s (%d train, %d test, %d features, %d classes) [%.1fs]",
                data.name, len(data.X_train), len(data.X_test), data.n_features, data.n_classes, time.perf_counter() - t0)
    for note in data.notes:
        logger.info("  note: %s", note)
    _check_feature_layer(args, data)  # before the teacher trains
    teacher = _teacher(args, data, t0)
    # --surrogates not given: None lets distill add the pattern surrogates for a convolutional teacher (--features auto)
    result = distill(teacher, data, surrogates=names if args.surrogates is not None else None, temperature=args.temperature,
                     seed=args.seed, params=params, min_agreement=args.min_agreement, gate=args.gate or "per_class",
                     min_class_agreement=args.min_class_agreement,
                     features=None if args.features == "none" else args.features, feature_layer=args.feature_layer)
    for row in result.fidelity():
        logger.info("  %-12s fidelity %.3f [%.3f, %.3f]  accuracy %.3f  size %d",
                    row["surrogate"], row["fidelity"], row["low"], row["high"], row["accuracy"], row["params"])
    logger.info("distilled [%.1fs]", time.perf_counter() - t0)
    analyses = _analyses(result, seed=args.seed, extras=_extras(result))
    logger.info("analysed [%.1fs]", time.perf_counter() - t0)
    with atomic_directory(out, kind="run", what="--out directory",
                          inputs=tuple(p for p in (args.csv, args.teacher) if p is not None)) as tmp:
        result.save(tmp / "model")
        metrics = metrics_document(result, seconds=time.perf_counter() - t0, analyses=analyses, min_agreement=args.min_agreement)
        write_json(tmp / "metrics.json", metrics)
        write_report(result, tmp, analyses=analyses, min_agreement=args.min_agreement, run_seconds=time.perf_counter() - t0)
    logger.info("report written to %s; done in %.1fs", out / "index.html", time.perf_counter() - t0)
    print(out / "index.html")
    return EXIT_OK


def metrics_document(
    result: Any,
    *,
    seconds: float | None = None,
    analyses: Any = None,
    min_agreement: float | None = None,
) -> dict[str, Any]:
    """The metrics.json document (see README, 'metrics.json').

    ``analysis`` holds ``analyses.to_json()`` (fidelity details, robustness, attributions and
    the extras such as curves) when the run was analysed.
    """
    m = result.metrics or result.evaluate()
    check = getattr(analyses, "teacher", None) if analyses is not None else None
    teacher = dict(m["teacher"])
    if check is not None:
        teacher["baselines"] = {"majority": check.majority, "majority_class": check.majority_class, "logistic": check.logistic}
    doc = {
        "schema": "explain_distill.metrics/1",
        "data": result.dataset.describe(),
        "teacher": teacher,
        "teacher_warning": check.warning if check is not None else None,
        "surrogates": m["surrogates"],
        "run": {
            "seed": result.seed,
            "temperature": result.temperature,
            "seconds": None if seconds is None else round(seconds, 3),
            "min_agreement": min_agreement,
            "data_sha256": result.info.get("data_sha256"),
            "teacher_sha256": result.info.get("teacher_sha256"),
            "versions": result.info.get("versions", {}),
            "transfer_set": result.info.get("transfer_set", {}),
        },
    }
    if analyses is not None:
        doc["analysis"] = analyses.to_json()
    return doc


def _analyses(result: Any, *, seed: int = 0, extras: dict[str, Any] | None = None) -> Any:
    """``run_analyses(result)`` with saved ``extras`` merged in; None when analysis is unavailable."""
    from .analysis import run_analyses

    analyses = run_analyses(result, seed=seed)
    for key, value in (extras or {}).items():
        analyses.extras.setdefault(key, value)
    return analyses


def _extras(result: Any) -> dict[str, Any]:
    """Curves and the student's compression: refits of cheap surrogates, computed once per run.

    ``temperature_curve`` refits tree/logistic/naive_bayes on the training split at T in
    1..20; ``size_curve`` the tree at depths 2..10 on the run's transfer set (with hard-label
    baselines); with a student, ``compression`` (params, FLOPs, bytes, latency) and
    ``kd_vs_hard`` (the run's KD student against the same net trained on hard labels).
    """
    from .analysis.compression import compression_report
    from .analysis.curves import kd_vs_hard, size_curve, temperature_curve

    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from ._device import cpu_cores

    t0 = time.perf_counter()
    cheap = [s for s in ("tree", "logistic", "naive_bayes") if s in result.surrogates] or ["tree"]
    student = "student" in result.surrogates
    # the latency is measured first, alone; then the hard-label student trains (torch, one thread) beside
    # the curves' scikit-learn and numpy refits when there is a second core, one BLAS thread each
    compression = compression_report(result.teacher, result.surrogates["student"]) if student else None
    beside = student and cpu_cores() >= 2
    with threadpool_limits(limits=1 if beside else None, user_api="blas"), ThreadPoolExecutor(1) as pool:
        kd = pool.submit(kd_vs_hard, result) if beside else None
        extras: dict[str, Any] = {
            "temperature_curve": temperature_curve(result, surrogates=cheap),
            "size_curve": size_curve(result),
        }
        if student:
            extras["compression"] = compression
            extras["kd_vs_hard"] = kd.result() if kd is not None else kd_vs_hard(result)
    logger.info("curves and compression in %.1fs", time.perf_counter() - t0)
    return extras


# Keys of metrics.json "analysis" that run_analyses recomputes; the rest (curves, compression,
# kd_vs_hard, ...) came from work `report` does not redo, so it lays out the saved values.
_RECOMPUTED = {"teacher_check", "fidelity", "robustness", "attribution", "analysis_seconds", "reasons", "patterns"}


def _saved_metrics(run_dir: Path) -> dict[str, Any]:
    """The metrics.json written beside a run (RUN_DIR/metrics.json or, for RUN_DIR/model, its parent)."""
    from ._io import read_json

    for candidate in (run_dir / "metrics.json", run_dir.parent / "metrics.json"):
        if candidate.is_file():
            try:
                doc = read_json(candidate, what="metrics file")
            except ValueError as exc:
                logger.warning("ignoring %s: %s", candidate, exc)
                return {}
            return doc if isinstance(doc, dict) else {}
    return {}


def _cmd_report(args: argparse.Namespace) -> int:
    from ._io import atomic_directory, check_output_dir, write_json
    from ._validation import check_fraction
    from .distill import load
    from .report.html import build_report, write_report

    if getattr(args, "min_agreement", None) is not None:
        check_fraction(args.min_agreement, "--min-agreement")
    in_place = args.out is None or Path(args.out).resolve() == Path(args.run_dir).resolve()
    if not in_place:
        check_output_dir(args.out, what="--out directory", inputs=(args.run_dir,))
    result = load(args.run_dir, device="cpu")
    saved = _saved_metrics(Path(args.run_dir))
    run = saved.get("run") or {}
    min_agreement = getattr(args, "min_agreement", None)
    if min_agreement is None:
        min_agreement = run.get("min_agreement")
    extras = {k: v for k, v in (saved.get("analysis") or {}).items() if k not in _RECOMPUTED}
    analyses = _analyses(result, seed=result.seed, extras=extras)
    seconds = run.get("seconds")
    out = Path(args.run_dir) if in_place else Path(args.out)
    if in_place:
        build_report(result, out, analyses=analyses, min_agreement=min_agreement, run_seconds=seconds)
    else:
        with atomic_directory(out, kind="report", what="--out directory", inputs=(args.run_dir,)) as tmp:
            write_json(tmp / "metrics.json", metrics_document(result, seconds=seconds, analyses=analyses, min_agreement=min_agreement))
            write_report(result, tmp, analyses=analyses, min_agreement=min_agreement, run_seconds=seconds)
        logger.info("report written to %s", out / "index.html")
    print(out / "index.html")
    return EXIT_OK


def _cmd_audit(args: argparse.Namespace) -> int:
    from ._validation import check_fraction
    from .analysis import audit, teacher_check
    from .distill import load

    if args.min_agreement is not None:
        check_fraction(args.min_agreement, "--min-agreement")
    check_fraction(args.min_class_agreement, "--min-class-agreement")
    result = load(args.run_dir, device="cpu")
    names = args.surrogate or list(result.surrogates)
    unknown = [n for n in names if n not in result.surrogates]
    if unknown:
        raise ValueError(f"--surrogate {unknown} not in this run; it has: {', '.join(result.surrogates)}.")
    bar = args.min_agreement
    if bar is None:
        bar = result.min_agreement if result.min_agreement is not None else 0.95
        logger.info("bar %.3f (%s)", bar, "the run's own" if result.min_agreement is not None else "the default")
    gate = args.gate or result.gate
    check = result.teacher_check or teacher_check(result.teacher, result.dataset, seed=result.seed)
    saved = (_saved_metrics(Path(args.run_dir)).get("analysis") or {}).get("reasons") or {}
    outcomes = [
        audit(result, n, min_agreement=bar, name=n, teacher_baseline=check, gate=gate,
              min_class_agreement=args.min_class_agreement,
              require_teacher_better_than_baseline=args.require_teacher_better_than_baseline)
        for n in names
    ]
    passed = all(o.passed for o in outcomes)
    verdict = _audit_verdict(result, outcomes, bar)
    if args.json:
        doc = {
            "passed": passed,
            "min_agreement": bar,
            "gate": gate,
            "teacher_warning": check.warning,
            "teacher_check": check.to_json(),
            "results": [{**o.to_dict(), "readable": _readable(result, o.surrogate), "reasons": saved.get(o.surrogate)}
                        for o in outcomes],
            "verdict": verdict.to_json(),
        }
        print(json.dumps(doc, indent=2))
    else:
        _print_audit(check, outcomes, bar, gate, saved, verdict, result)
    return EXIT_OK if passed else EXIT_FAILED


def _readable(result: Any, name: str) -> bool:
    from .distill.plan import readable_at

    return readable_at(name, result.surrogates.get(name))


def _audit_verdict(result: Any, outcomes: list[Any], bar: float) -> Any:
    """The verdict in words over the audited surrogates: which readable model, if any, explains the network."""
    from .analysis.patterns import pattern_verdict

    return pattern_verdict({o.surrogate: o for o in outcomes}, bar=bar,
                           readable={o.surrogate: _readable(result, o.surrogate) for o in outcomes})


def _print_audit(check: Any, outcomes: list[Any], bar: float, gate: str, saved: dict, verdict: Any, result: Any) -> None:
    w = max([14] + [len(o.surrogate) + 2 for o in outcomes])
    print(
        f"teacher: test accuracy {check.teacher_accuracy:.4f}; baselines: majority class {check.majority:.4f}, "
        f"logistic regression {'n/a' if check.logistic is None else format(check.logistic, '.4f')}"
    )
    if check.warning:
        print(f"WARNING: {check.warning}")
    rule = "the lower bound" + (" and every class" if gate == "per_class" else "")
    print(
        f"{'surrogate':<{w}}{'agreement':>10}{'95% low':>10}{'95% high':>10}{'kappa':>8}{'balanced':>10}{'KL':>8}"
        f"{'TV':>8}{'n':>7}  readable  verdict (bar {bar:.3f} on {rule})"
    )
    for o in outcomes:
        lo, hi = o.intervals["agreement"]
        kl, tv = o.metrics.get("kl", float("nan")), o.metrics.get("tv", float("nan"))
        print(
            f"{o.surrogate:<{w}}{o.metrics['agreement']:>10.4f}{lo:>10.4f}{hi:>10.4f}{o.metrics['kappa']:>8.3f}"
            f"{o.metrics['balanced']:>10.3f}{kl:>8.3f}{tv:>8.3f}{o.n:>7}  {'yes' if _readable(result, o.surrogate) else 'no ':<8}"
            f"  {'PASS' if o.passed else 'FAIL'}: {o.reason}"
        )
        flag = (saved.get(o.surrogate) or {}).get("flag")
        if flag:
            print(f"{'':<{w}}note: {flag}")
    print(f"\nverdict: {verdict.text}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.quiet)
    handlers = {"run": _cmd_run, "audit": _cmd_audit, "report": _cmd_report, "label": _cmd_label}
    previous_term = _raise_on_sigterm()
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("explain-distill: interrupted; nothing was written over the previous output.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError) as exc:
        if args.debug:
            raise
        print(f"explain-distill {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


def _raise_on_sigterm() -> Any:
    """Treat SIGTERM like Ctrl-C (so the temporary output is cleaned up); returns the old handler."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, _interrupt)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
