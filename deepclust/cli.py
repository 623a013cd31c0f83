"""The ``deepclust`` command line: fit, evaluate, predict, datasets, methods."""
from __future__ import annotations

import argparse
import inspect
import json
import math
import shlex
import signal
import sys
import time
from pathlib import Path

from deepclust.data import dataset_status, list_datasets, load_dataset, load_source, read_source
from deepclust.engine import distributed
from deepclust.engine.config import (ConfigError, deep_merge, load_yaml, parse_assignment, parse_assignments,
                                     with_shared_sections)
from deepclust.engine.runtime import resolve_device
from deepclust.ensemble import ensemble_runs, write_labels
from deepclust.evaluation import evaluate_clustering, format_metrics
from deepclust.evaluation.shift import evaluate_shifts, format_shift_table, parse_shift
from deepclust.methods import DeepClusterer, get_method, list_methods, load_estimator
from deepclust.methods.base import configured_image_size
from deepclust.methods.concurl import evaluate_paper_protocol as concurl_paper_protocol

#: ``evaluate --protocol`` names → a paper's own evaluation (estimator, dataset, seed) → marked metrics.
PAPER_PROTOCOLS = {"concurl-paper": concurl_paper_protocol}


class CommandError(Exception):
    """A user error on the command line."""


def _class_list(text: str) -> list[str]:
    classes = [part.strip() for part in text.split(",") if part.strip()]
    if len(classes) < 2:
        raise argparse.ArgumentTypeError(f"give at least two comma-separated classes, got '{text}'")
    return classes


def _add_data_arguments(parser: argparse.ArgumentParser, required: bool, data_options: bool = False,
                        split_from_config: bool = False) -> None:
    parser.add_argument("--dataset", required=required, help=f"dataset name ({', '.join(list_datasets())})")
    parser.add_argument("--data-root", help="folder holding the dataset files (default: see `deepclust datasets`)")
    if split_from_config:
        parser.add_argument("--split", help="train, test or all (default: the configuration's data.split, as a "
                                            "paper preset sets it; else all = train+test)")
    else:
        parser.add_argument("--split", default="all", help="train, test or all (default: all = train+test)")
    parser.add_argument("--classes", type=_class_list, metavar="C1,C2,...",
                        help="cluster the images of these classes only (label indices or class names, e.g. "
                             "0,2,4,6 or Sandal,Sneaker,'Ankle boot'), relabelled 0.. in that order; K = their number")
    parser.add_argument("--subset", type=int, help="use a seeded random subset of this many images")
    parser.add_argument("--imbalance", type=int, default=0, choices=(0, 1, 2, 3),
                        help="class-imbalance protocol 1-3 of HardReg: subsample each class with its own "
                             "seeded keep probability (default 0: none)")
    if data_options:
        parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                            help="loader option, e.g. label_level=fine (cifar100), on_error=skip (image "
                                 "folders), include_unlabeled=true (stl10), image_size=64 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepclust", description="Deep image clustering.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="train a method on a dataset and evaluate it")
    fit.add_argument("--method", required=True, help="method name (see `deepclust methods`)")
    _add_data_arguments(fit, required=True, data_options=True, split_from_config=True)
    fit.add_argument("--preset", help="preset name of the method (see `deepclust methods`)")
    fit.add_argument("--config", help="YAML/TOML file merged over the preset")
    fit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override one config key, e.g. --set training.epochs=5 (repeatable)")
    fit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="set an estimator parameter, e.g. --param features=small_cnn (repeatable)")
    fit.add_argument("--out", help="run folder (default: runs/<method>-<dataset>-<time>)")
    fit.add_argument("--n-clusters", type=int, help="number of clusters (default: the dataset's classes)")
    fit.add_argument("--epochs", type=int, dest="max_epochs")
    fit.add_argument("--batch-size", type=int)
    fit.add_argument("--lr", type=float)
    fit.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--max-minutes", type=float, help="training time budget; stops cleanly and evaluates")
    fit.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last checkpoint, with its own config.yaml (it may "
                          "change --epochs, --max-minutes and logging); see docs/RUNS.md")
    fit.add_argument("--overwrite", action="store_true",
                     help="replace the run in --out: delete the files a run writes there first")
    fit.add_argument("--logger", help="loggers besides log.jsonl, comma-separated: csv, tensorboard "
                                      "(sets training.loggers)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    fit.add_argument("--refine", action="store_true",
                     help="after training, refine by self-labelling (the config's refine section; tune it with "
                          "--set refine.KEY=VALUE; see docs/REFINE_AND_ENSEMBLE.md)")

    evaluate = commands.add_parser("evaluate", help="evaluate a trained run on a dataset")
    evaluate.add_argument("--run", required=True, help="run folder (holding model.pt) or a model.pt file")
    _add_data_arguments(evaluate, required=False, data_options=True)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--shift", action="append", default=[], metavar="NAME:SEVERITY",
                          help="also evaluate (no refit) on a corrupted copy of the dataset, e.g. gaussian_noise:3 "
                               "(severity 1-5; names: see deepclust.evaluation.shift.list_shifts); repeatable")
    evaluate.add_argument("--protocol", default="default", choices=("default",) + tuple(PAPER_PROTOCOLS),
                          help="default: the label-free evaluation; concurl-paper: ConCURL's published protocol, "
                               "the best of four representations chosen WITH THE LABELS (default data: the run's "
                               "training data; writes <run>/metrics-concurl-paper.json)")

    predict = commands.add_parser("predict", help="write cluster labels of a dataset to CSV")
    predict.add_argument("--run", required=True, help="run folder (holding model.pt) or a model.pt file")
    _add_data_arguments(predict, required=True, data_options=True)
    predict.add_argument("--output", default="labels.csv",
                         help="CSV file to write: index,label, or index,path,label for an image folder")
    predict.add_argument("--device", default="auto")
    predict.add_argument("--seed", type=int, default=0)

    datasets = commands.add_parser("datasets", help="which datasets are found locally, and where")
    datasets.add_argument("--data-root", help="also look in this folder")

    commands.add_parser("methods", help="list methods and their presets")

    ensemble = commands.add_parser("ensemble", help="consensus clustering of several fitted runs on the same data; "
                                                    "writes labels.csv, metrics.json, ensemble.json, data.json")
    ensemble.add_argument("runs", nargs="+", metavar="RUN",
                          help="run folders of `deepclust fit` or `deepclust ensemble` (two or more), or labels files "
                               "in them of the same training images (e.g. RUN_DIR/umap-gmm-labels.csv: the readout's)")
    ensemble.add_argument("--out", help="the ensemble's folder (default: runs/ensemble-<time>)")
    ensemble.add_argument("--n-clusters", type=int, help="clusters of the consensus (default: the runs')")
    ensemble.add_argument("--seed", type=int, default=0, help="seed of the k-means++ starts")
    ensemble.add_argument("--n-init", type=int, default=10, help="k-means++ starts besides one per run (default 10)")
    ensemble.add_argument("--data-root", help="where the runs' dataset is, for ACC/NMI/ARI (default: their data.json's)")
    ensemble.add_argument("--device", default="cpu", help="where the consensus k-means runs (default cpu)")
    ensemble.add_argument("--overwrite", action="store_true", help="replace an ensemble already in --out")

    bench = commands.add_parser("bench", help="train every method and the baselines on one dataset over several "
                                              "seeds; write a results table (.md, .csv, .json)")
    _add_data_arguments(bench, required=True)
    bench.add_argument("--methods", default="all", help="'all' (every registered deep method) or m1,m2,...")
    bench.add_argument("--budget-minutes", type=float, required=True, help="training time budget of each run")
    bench.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2); the table shows "
                                                        "mean ± sample sd, the JSON every run")
    bench.add_argument("--preset", help="preset of every deep method (default: cpu-fashion-mnist)")
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one config key of every deep method's preset, e.g. --set backbone.depth=2 "
                            "(repeatable; not the baselines'); results <dataset>-set-<KEY>-<VALUE>.md/.csv/.json")
    bench.add_argument("--out", help="folder of <dataset>.md/.csv/.json (default: benchmarks/results)")
    bench.add_argument("--runs-dir", help="folder of the run folders (default: runs/bench-<dataset>-<time>)")
    bench.add_argument("--n-clusters", type=int, help="number of clusters (default: the dataset's classes)")
    bench.add_argument("--baselines", default="all",
                       help="comma-separated: kmeans, umap-gmm (on pixels), kmeans-<backbone>, umap-gmm-<backbone> "
                            "(random weights, e.g. kmeans-small_cnn), ae-umap-gmm (N2D, trained under "
                            "--budget-minutes); 'all' = kmeans,umap-gmm,ae-umap-gmm (default); 'none'; "
                            "old spellings: pixels = kmeans, <backbone> = kmeans-<backbone>")
    bench.add_argument("--baseline-image-size", type=int,
                       help="resize images to this size for the backbone baselines (a backbone's minimum size)")
    bench.add_argument("--kmeans-n-init", type=int, help="k-means restarts of the k-means baselines (default: 10)")
    bench.add_argument("--no-embedding-quality", action="store_true",
                       help="skip the kNN and linear-probe accuracies of the embeddings (which use the labels)")
    bench.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    bench.add_argument("--verbose", action="store_true", help="progress bars of the deep methods")
    bench.add_argument("--resume", action="store_true",
                       help="--runs-dir holds an earlier run of this benchmark: keep its finished runs (their rows "
                            "from --out's JSON) and run the others again")
    bench.add_argument("--overwrite", action="store_true",
                       help="--runs-dir holds an earlier run of this benchmark: run every job again (deletes their "
                            "run files)")
    bench.add_argument("--refine", nargs="*", metavar="KEY=VALUE",
                       help="train each deep method with the refine stage, its refine.KEY set to VALUE (e.g. "
                            "--refine epochs=5 max_minutes=3): rows 'M' (before) and 'M + refine' (after)")
    bench.add_argument("--readout", nargs="*", metavar="KEY=VALUE",
                       help="add a row 'M + UMAP-GMM' per deep method: UMAP + GMM on the run's embeddings instead "
                            "of its own labels, KEY an option of UMAP + GMM (e.g. --readout n_components=10 "
                            "metric=cosine); the same training as row 'M'. With --resume, kept runs get theirs from "
                            "their model.pt, without training again")
    bench.add_argument("--held-out", metavar="SPLIT",
                       help="score every run on this split's images, which it never trained on (with --split "
                            "train: --held-out test); results <dataset>-held-out-<SPLIT>.md/.csv/.json")
    bench.add_argument("--ensemble", action="store_true",
                       help="add a row per seed: the consensus of that seed's deep-method runs")

    report = commands.add_parser("report", help="HTML report of a run: curves, confusion matrix, embedding map, "
                                                "cluster sizes and sample images")
    report.add_argument("run_dir", metavar="RUN_DIR", help="run folder (holding model.pt)")
    report.add_argument("--out", help="output folder (default: RUN_DIR/report)")
    _add_data_arguments(report, required=False)
    report.add_argument("--subset-seed", type=int, help="seed of the --subset draw (default: the run's seed)")
    report.add_argument("--max-points", type=int, default=2000, help="images in the embedding map (default 2000)")
    report.add_argument("--samples-per-cluster", type=int, default=10)
    report.add_argument("--embedding", default="auto", choices=["auto", "tsne", "umap"],
                        help="auto: UMAP when the umap package is installed, else t-SNE")
    report.add_argument("--device", default="auto")
    report.add_argument("--seed", type=int, default=0, help="seed of the subsamples and of t-SNE")
    return parser


def _data_options(assignments: list[str]) -> dict:
    options = {}
    for assignment in assignments:
        if "=" not in assignment:
            raise CommandError(f"--data-option expects KEY=VALUE, got '{assignment}'")
        key, raw = assignment.split("=", 1)
        options[key.strip()] = load_yaml(raw)
    return options


def _load_data(args, seed: int, training_size: int | None = None):
    """The --dataset data; image folders are stored for ``training_size`` px training (load_dataset)."""
    dataset = load_dataset(args.dataset, root=args.data_root, split=args.split or "all", imbalance=args.imbalance,
                           seed=seed, training_size=training_size, classes=args.classes,
                           **_data_options(getattr(args, "data_option", [])))
    return dataset if args.subset is None else dataset.sample(args.subset, seed)


def _estimator_params(estimator_class, args) -> dict:
    accepted = set(inspect.signature(estimator_class.__init__).parameters) - {"self"}
    params = {}
    candidates = {
        "preset": args.preset, "max_epochs": args.max_epochs, "batch_size": args.batch_size, "lr": args.lr,
        "max_minutes": args.max_minutes, "resume": args.resume or None, "overwrite": args.overwrite or None,
    }
    for name, value in candidates.items():
        if value is None:
            continue
        if name not in accepted:
            raise CommandError(f"method '{args.method}' does not take --{name.replace('_', '-')}")
        params[name] = value
    config = {}
    if args.config:
        from deepclust.engine.config import read_config_file
        config = read_config_file(args.config)
    config = deep_merge(config, parse_assignments(args.set), strict=False)
    if args.refine:
        config = deep_merge(config, {"refine": {"enabled": True}}, strict=False)
    if args.logger:
        names = [name.strip() for name in args.logger.split(",") if name.strip()]
        config = deep_merge(config, {"training": {"loggers": ["jsonl", *names]}}, strict=False)
    if config:
        if "config" not in accepted:
            raise CommandError(f"method '{args.method}' takes no configuration (--config/--set/--refine)")
        params["config"] = config
    for assignment in args.param:
        if "=" not in assignment:
            raise CommandError(f"--param expects NAME=VALUE, got '{assignment}'")
        name, raw = assignment.split("=", 1)
        if name not in accepted:
            raise CommandError(f"method '{args.method}' has no parameter '{name}'; "
                               f"valid: {', '.join(sorted(accepted))}")
        params[name] = load_yaml(raw)
    return params


def _print_metrics(metrics: dict, prefix: str = "") -> None:
    print(format_metrics(metrics, prefix))


def _configured_data(estimator_class, params: dict, out: str | None) -> tuple[str, int | None]:
    """The split of a fit without --split and the image side it trains on: the configuration's
    ``data.split`` and ``augmentation.image_size`` (deep methods; a resumed run's own), else all and None."""
    if not issubclass(estimator_class, DeepClusterer):
        return "all", None
    estimator = estimator_class(**params, out_dir=out)
    return estimator.data_split(), estimator.training_image_size()


def _trained_image_size(estimator) -> int | None:
    """The image side a loaded model was trained on, for which new image-folder data is stored."""
    return configured_image_size(getattr(estimator, "config_", None) or {})


def command_fit(args) -> int:
    estimator_class = get_method(args.method)
    params = _estimator_params(estimator_class, args)
    split, training_size = _configured_data(estimator_class, params, args.out)
    if args.split is None:  # an explicit --split wins over the preset's data.split
        args.split = split
    dataset = _load_data(args, args.seed, training_size)
    n_clusters = args.n_clusters or dataset.n_classes
    if not n_clusters:
        raise CommandError(f"dataset '{dataset.name}' has no labels: give --n-clusters")
    distributed.init_from_environment(resolve_device(args.device))  # under torchrun: join the process group
    try:
        out = Path(args.out) if args.out else Path("runs") / f"{args.method}-{dataset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        out = Path(distributed.broadcast_object(str(out)))  # one run folder, named by rank 0
        params.update(n_clusters=n_clusters, device=args.device, seed=args.seed, out_dir=str(out),
                      verbose=not args.quiet)
        estimator = estimator_class(**params)
        main_process = distributed.is_main_process()
        if main_process:
            workers = f", {distributed.world_size()} processes" if distributed.is_distributed() else ""
            print(f"fitting {args.method} on {dataset.name} (split {args.split}, {len(dataset)} images, shape "
                  f"{dataset.shape}), K={n_clusters}, run folder {out}{workers}", flush=True)
        try:
            estimator.fit(dataset)
        except KeyboardInterrupt as interrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopped: a further Ctrl-C has nothing left to cut short
            if main_process:
                print(_interrupted_line(interrupt, _continue_command(args, out)), flush=True)
            return 128 + signal.SIGINT
        if main_process:
            metrics = estimator.metrics_
            _print_metrics(metrics, prefix=f"{args.method} on {dataset.name}: ")
            if "before_refine" in metrics:
                _print_metrics(metrics["before_refine"], prefix=f"{args.method} before refinement: ")
            for name, entry in metrics.items():  # label-selected paper-protocol numbers, marked as such
                if isinstance(entry, dict) and entry.get("selected_with_labels"):
                    _print_metrics(entry, prefix=f"{name} (SELECTED WITH LABELS, not label-free): ")
            print(f"{metrics['seconds']:.1f} s; wrote {out / 'metrics.json'}")
            used = metrics.get("n_clusters_used")
            if used is not None and used < n_clusters / 2:
                print(f"warning: collapse: {used} of {n_clusters} clusters used", flush=True)
        result = getattr(estimator, "fit_result_", None)
        if result is None or result.stop_reason == "completed":
            return 0
        if result.stop_signal:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping as asked: nothing left to cut short
        if main_process:
            print(_stop_line(estimator, args, out), flush=True)
        return 128 + result.stop_signal if result.stop_signal else 0
    finally:
        distributed.shutdown()


def _continue_command(args, out: Path, budget: float | None = None) -> str:
    """The command that continues this fit: its own words without --overwrite, with --out and --resume,
    and after a time budget the next ``budget`` as its --max-minutes."""
    words, skip_value = [], False
    for word in args.argv:
        if skip_value:
            skip_value = False
        elif word == "--overwrite" or (budget is not None and word.startswith("--max-minutes=")):
            continue
        elif budget is not None and word == "--max-minutes":
            skip_value = True
        else:
            words.append(word)
    words += ([] if args.out else ["--out", str(out)]) + ([] if args.resume else ["--resume"])
    words += [] if budget is None else ["--max-minutes", f"{budget:g}"]
    return shlex.join(["deepclust", *words])


def _next_budget(trained_minutes: float, budget: float) -> float:
    """A budget that gives a run stopped by its budget as much training again: the time trained so far
    (all of it counts) plus the last budget, rounded up to 0.01 min."""
    return math.ceil((trained_minutes + budget) * 100) / 100


def _stop_line(estimator, args, out: Path) -> str:
    """The last line of a fit that stopped early: why, where, and how to continue."""
    result, training = estimator.fit_result_, estimator.config_["training"]
    budget = None if result.stop_signal else training.get("max_minutes")
    trained = result.train_seconds / 60
    more = f" (the budget counts all {trained:.2f} min trained so far)" if budget else ""
    next_budget = None if budget is None else _next_budget(trained, budget)
    return (f"{result.stop_reason} after {result.epochs_completed} of {training['epochs']} epochs (step "
            f"{result.global_step}); model.pt holds the model so far; continue with: "
            f"{_continue_command(args, out, next_budget)}{more}")


def _interrupted_line(interrupt: KeyboardInterrupt, command: str) -> str:
    """The last line of a fit stopped at once (a second Ctrl-C): nothing after the last checkpoint is kept."""
    where = getattr(interrupt, "step", None)
    kept = (f"the last checkpoint, at epoch {interrupt.epoch} (step {where}), is kept" if where is not None
            else "no checkpoint was written")
    return f"interrupted: stopped at once, without evaluating; {kept}; continue with: {command}"


def _run_model_path(run: str) -> Path:
    path = Path(run)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise CommandError(f"no trained model at {path} (a run folder of `deepclust fit` holds model.pt)")
    return path


def command_evaluate(args) -> int:
    path = _run_model_path(args.run)
    shifts = [parse_shift(text) for text in args.shift]
    if shifts and args.dataset is None:
        raise CommandError("--shift needs --dataset (the data to corrupt)")
    estimator = load_estimator(path, device=args.device)
    if args.protocol != "default":
        if shifts:
            raise CommandError("--shift and --protocol cannot be combined")
        return _evaluate_paper_protocol(args, estimator, path.parent)
    if args.dataset is None:
        metrics = estimator.metrics_
        _print_metrics(metrics, prefix="stored training metrics: ")
        return 0
    dataset = _load_data(args, args.seed, _trained_image_size(estimator))
    if shifts:
        rows = evaluate_shifts(estimator, dataset, shifts, seed=args.seed)
        print(f"{dataset.name} ({len(dataset)} images), predicted with the trained model (no refit):")
        print(format_shift_table(rows))
        print(json.dumps(rows))
        return 0
    labels = estimator.predict(dataset)
    metrics = evaluate_clustering(dataset.labels, labels, estimator.n_clusters)
    _print_metrics(metrics, prefix=f"{dataset.name}: ")
    print(json.dumps(metrics))
    return 0


def _evaluate_paper_protocol(args, estimator, run_dir: Path) -> int:
    """``evaluate --protocol NAME``: a paper's own evaluation, on --dataset or the run's training data."""
    protocol = PAPER_PROTOCOLS[args.protocol]
    if args.dataset is not None:
        dataset = _load_data(args, args.seed, _trained_image_size(estimator))
    else:
        source = read_source(run_dir)
        if source is None:
            raise CommandError(f"--protocol {args.protocol} without --dataset needs the run's data.json in {run_dir}")
        dataset = load_source(source, args.data_root)
    result = protocol(estimator, dataset, seed=args.seed)
    print(f"{args.protocol} protocol on {dataset.name} ({len(dataset)} images): {result['selection']}")
    for name, metrics in result["representations"].items():
        _print_metrics(metrics, prefix=f"  {name:<15} ")
    _print_metrics(result, prefix=f"SELECTED WITH LABELS ({result['selected_representation']}): ")
    output = run_dir / f"metrics-{args.protocol}.json"
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output}")
    print(json.dumps(result))
    return 0


def command_predict(args) -> int:
    estimator = load_estimator(_run_model_path(args.run), device=args.device)
    dataset = _load_data(args, args.seed, _trained_image_size(estimator))
    labels = estimator.predict(dataset)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_labels(output, labels, dataset.paths)
    print(f"wrote {len(labels)} labels to {output}" + ("" if dataset.paths is None else " (index,path,label)"))
    return 0


def command_ensemble(args) -> int:
    out = Path(args.out or Path("runs") / f"ensemble-{time.strftime('%Y%m%d-%H%M%S')}")
    result = ensemble_runs(args.runs, out, n_clusters=args.n_clusters, seed=args.seed, n_init=args.n_init,
                           data_root=args.data_root, device=args.device, overwrite=args.overwrite)
    for member in result.members:
        _print_metrics(member, prefix=f"member {member['run']} ({member['method']}, J {member['objective']:.4f}): ")
    _print_metrics(result.metrics, prefix=f"ensemble of {len(result.members)} (J {result.metrics['objective']:.4f}): ")
    print(f"wrote {out / 'labels.csv'} and {out / 'metrics.json'}")
    return 0


def command_datasets(args) -> int:
    for entry in dataset_status(args.data_root):
        mark = "found  " if entry["found"] else "missing"
        print(f"{entry['name']:<15} {mark} {entry['path']}")
        if not entry["found"] and entry.get("hint"):
            print(f"{'':<23} {entry['hint']}")
    return 0


def command_methods(args) -> int:
    for name in list_methods():
        estimator_class = get_method(name)
        doc = " ".join((estimator_class.__doc__ or "").strip().split("\n\n")[0].split())
        print(f"{name:<10} {doc}")
        presets = estimator_class.presets() if hasattr(estimator_class, "presets") else []
        if presets:
            print(f"{'':<10} presets: {', '.join(presets)}")
    return 0


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"{option} expects comma-separated integers, e.g. 0,1,2; got '{text}'") from None


def _refine_overrides(assignments: list[str] | None) -> dict | None:
    """``bench --refine KEY=VALUE ...`` as a ``refine`` section override, checked against the section."""
    if assignments is None:
        return None
    overrides = parse_assignments(assignments)
    with_shared_sections({"refine": overrides})  # an unknown key fails here, before any training
    return overrides


def _readout_options(assignments: list[str] | None) -> dict | None:
    """``bench --readout KEY=VALUE ...`` as UMAP + GMM options (``run_benchmark`` checks them)."""
    if assignments is None:
        return None
    options: dict = {}
    for assignment in assignments:
        options.update(parse_assignment(assignment))
    return options


def command_bench(args) -> int:
    from deepclust.reporting.bench import BenchSettings, run_benchmark

    seeds = _int_list(args.seeds, "--seeds")
    settings = BenchSettings(
        dataset=args.dataset, budget_minutes=args.budget_minutes, methods=args.methods, seeds=seeds,
        preset=args.preset, overrides=list(args.set), subset=args.subset, split=args.split,
        classes=args.classes, held_out=args.held_out,
        imbalance=getattr(args, "imbalance", 0) or 0,
        data_root=args.data_root, runs_dir=args.runs_dir, n_clusters=args.n_clusters, baselines=args.baselines,
        baseline_image_size=args.baseline_image_size,
        embedding_quality=not args.no_embedding_quality, refine=_refine_overrides(args.refine),
        readout=_readout_options(args.readout), ensemble=args.ensemble,
        verbose=args.verbose, resume=args.resume, overwrite=args.overwrite,
        **{field: value for field, value in (("out", args.out), ("device", args.device),
                                             ("kmeans_n_init", args.kmeans_n_init)) if value is not None})
    words = ["deepclust", "bench", "--dataset", args.dataset, "--methods", args.methods, "--baselines", args.baselines,
             "--budget-minutes", f"{args.budget_minutes:g}", "--seeds", ",".join(map(str, seeds))]
    for option, value in (("--preset", args.preset), ("--subset", args.subset), ("--split", args.split),
                          ("--classes", None if args.classes is None else ",".join(args.classes)),
                          ("--held-out", args.held_out),
                          ("--imbalance", settings.imbalance or None),
                          ("--data-root", args.data_root), ("--n-clusters", args.n_clusters),
                          ("--baseline-image-size", args.baseline_image_size),
                          ("--kmeans-n-init", args.kmeans_n_init), ("--device", args.device), ("--out", args.out),
                          ("--runs-dir", args.runs_dir)):
        if value is not None and value != getattr(BenchSettings, option[2:].replace("-", "_")):
            words += [option, str(value)]
    for assignment in args.set:
        words += ["--set", assignment]
    if args.no_embedding_quality:
        words.append("--no-embedding-quality")
    words += [] if args.refine is None else ["--refine", *args.refine]
    words += [] if args.readout is None else ["--readout", *args.readout]
    words += ["--ensemble"] if args.ensemble else []
    words += ["--resume"] if args.resume else []
    paths = run_benchmark(settings, command=shlex.join(words), log=lambda text: print(text, flush=True))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def command_report(args) -> int:
    from deepclust.reporting.report import ReportOptions, build_report

    options = ReportOptions(out=args.out, dataset=args.dataset, data_root=args.data_root, split=args.split,
                            classes=args.classes, subset=args.subset, subset_seed=args.subset_seed,
                            imbalance=getattr(args, "imbalance", 0) or 0, device=args.device,
                            max_points=args.max_points, samples_per_cluster=args.samples_per_cluster,
                            embedding=args.embedding, seed=args.seed)
    if options.max_points < 1 or options.samples_per_cluster < 1:
        raise CommandError(f"--max-points and --samples-per-cluster must be >= 1, got "
                           f"{options.max_points} and {options.samples_per_cluster}")
    build_report(args.run_dir, options)
    return 0


COMMANDS = {"fit": command_fit, "evaluate": command_evaluate, "predict": command_predict,
            "datasets": command_datasets, "methods": command_methods, "bench": command_bench,
            "report": command_report, "ensemble": command_ensemble}


def _check_launcher(args) -> None:
    """Under torchrun only ``fit`` of a deep method is distributed; the rest would run (and write) W times."""
    if not distributed.launched_by_torchrun():
        return
    if args.command != "fit":
        raise CommandError(f"'deepclust {args.command}' runs in one process; start it without torchrun")
    if not issubclass(get_method(args.method), DeepClusterer):
        raise CommandError(f"method '{args.method}' is not trained by gradient descent and runs in one process; "
                           "start it without torchrun")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _check_launcher(args)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"deepclust {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except (CommandError, ConfigError, ValueError, OSError, RuntimeError, MemoryError) as error:
        if args.debug:
            raise
        print(f"deepclust {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
