"""``mlsafety values train | eval | score``: learn a utility of human pleasantness judgements,
measure it, and see how easily an optimiser games it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from mlsafety.cli._app import app
from mlsafety.cli._common import (
    ADDRESS_HELP,
    EXECUTOR_HELP,
    EXIT_FINDINGS,
    WORKERS_HELP,
    check_out_dir,
    check_out_file,
    check_positive_option,
    check_seed,
    cli_errors,
    console,
    fail,
    make_cli_executor,
    parse_thresholds,
    print_verdict,
    print_written,
    progress_bar,
)

values_app = typer.Typer(help="Value learning: a utility model of human pleasantness judgements.",
                         no_args_is_help=True)
app.add_typer(values_app, name="values")


ENCODER_HELP = "minilm (default, offline), hashing (fast baseline) or local (with --encoder-path)."


def default_model_path(encoder: str = "minilm") -> Path:
    """Where ``values train`` saves, and ``eval``/``score`` look, by default: one file per encoder."""
    from mlsafety.models.default import cache_dir

    name = "utility.safetensors" if encoder == "minilm" else f"utility-{encoder}.safetensors"
    return cache_dir() / "values" / name


def _default_for(encoder: str | None, encoder_path: str | None) -> Path:
    """The default model of ``encoder``; with no encoder named, the most recently trained default."""
    if encoder is not None or encoder_path is not None:
        return default_model_path(encoder or "local")
    trained = sorted(default_model_path().parent.glob("utility*.safetensors"), key=lambda p: p.stat().st_mtime)
    return trained[-1] if trained else default_model_path()


def _is_finetuned(path: Path) -> bool:
    """Whether ``path`` holds a FineTunedUtility (``values train --finetune-layers``)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return '"mlsafety.values.finetuned/' in (handle.metadata() or {}).get("mlsafety", "")
    except Exception:
        return False  # UtilityModel.load gives the error message


def _load_utility(model: Path | None, encoder: str | None, encoder_path: str | None) -> Any:
    """Load ``model`` (default: the one trained with ``encoder``), checking that the encoders agree."""
    from mlsafety.alignment.values.utility import UtilityModel, resolve_encoder

    if encoder is not None and encoder not in ("minilm", "hashing", "local"):
        from mlsafety.registry import ENCODERS

        ENCODERS.get(encoder)  # unknown names fail here, with suggestions
    path = model or _default_for(encoder, encoder_path)
    if path.is_file() and _is_finetuned(path):
        from mlsafety.alignment.values.finetune import FineTunedUtility

        if encoder not in (None, "minilm") or encoder_path is not None:
            raise fail(f"{path} is a fine-tuned MiniLM utility; drop --encoder/--encoder-path.")
        return FineTunedUtility.load(path)
    utility = UtilityModel.load(path)
    trained_with = getattr(resolve_encoder(utility.encoder), "registry_name", None)
    if encoder is not None and trained_with is not None and encoder != trained_with:
        raise fail(f"{path} was trained with the {trained_with} encoder, not {encoder}; pass --encoder {trained_with} "
                   f"or train a model with 'mlsafety values train --encoder {encoder}'.")
    if encoder_path is not None:
        if trained_with not in (None, "local"):
            raise fail(f"--encoder-path applies to models trained with --encoder local; {path} uses {trained_with}.")
        utility.encoder = _encoder("local", encoder_path)
    return utility


def _encoder(name: str, path: str | None) -> Any:
    from mlsafety.registry import ENCODERS

    if name == "local" and path is None:
        raise fail("--encoder local needs --encoder-path pointing at a sentence-transformers or Hugging Face model folder.")
    if path is not None and name != "local":
        name = "local"
    return ENCODERS.create(name, path=path) if name == "local" else ENCODERS.create(name)


def _vader_splits(seed: int, n_pairs: int, domains: str | None) -> Any:
    from mlsafety.alignment.values.experiment import vader_splits
    from mlsafety.alignment.values.vader import load_vader

    names = [d.strip() for d in domains.split(",") if d.strip()] if domains else None
    return vader_splits(load_vader(domains=names), n_train_pairs=n_pairs, n_test_pairs=max(1000, n_pairs // 4),
                        seed=seed)


def _pair_accuracy(model: Any, pairs: Any, bar: Any = None) -> dict[str, float]:
    from mlsafety.alignment.values.metrics import evaluate_pairs

    if not hasattr(model, "encoder"):  # a fine-tuned utility scores texts itself
        u = model.utility(pairs.texts, progress=bar).numpy()
    elif bar is None:
        u = model.score_texts(pairs.texts).numpy()
    else:
        from mlsafety.alignment.values.utility import resolve_encoder

        u = model.utility(_encode(resolve_encoder(model.encoder), pairs.texts, bar)).numpy()
    out = evaluate_pairs(u, pairs.better, pairs.worse, pairs.hard if pairs.hard.any() else None)
    from mlsafety.alignment.values.ethics import ethics_pairwise

    interval = ethics_pairwise(u, pairs)
    out["low"], out["high"] = interval["low"], interval["high"]
    return out


@values_app.command("train")
@cli_errors
def train(
    encoder: Annotated[str, typer.Option(help=ENCODER_HELP)] = "minilm",
    encoder_path: Annotated[str | None, typer.Option(help="Model folder for --encoder local.")] = None,
    head: Annotated[str, typer.Option(help="linear or mlp.")] = "linear",
    loss: Annotated[str, typer.Option(help="bradley-terry (pairs) or regression (ratings; VADER only).")] = "bradley-terry",
    ethics: Annotated[str | None, typer.Option(help="Train on ETHICS utilitarianism: the ethics folder (util_*.csv or .csv.gz) or one file; also reports test and test-hard accuracy.")] = None,
    pairs: Annotated[str | None, typer.Option(help="Train on a CSV of pairs (better,worse).")] = None,
    domains: Annotated[str | None, typer.Option(help="VADER domains, comma-separated (default all): tweets, movie_reviews, nyt_editorials, amazon_reviews.")] = None,
    n_pairs: Annotated[int, typer.Option(help="Training pairs built from the VADER ratings.")] = 20000,
    weight_decay: Annotated[float, typer.Option(help="L2 penalty.")] = 1e-2,
    finetune_layers: Annotated[int | None, typer.Option(help="Fine-tune MiniLM end to end (ETHICS or pair files): the top N transformer layers and the head, with the Bradley–Terry loss; -1 = all layers. Minutes per epoch on a CPU.")] = None,
    epochs: Annotated[float, typer.Option(help="Passes over the pairs when fine-tuning.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed (data split and training).")] = 0,
    out: Annotated[Path | None, typer.Option(help="Model file (.safetensors). Default: the cache's values/utility[-ENCODER].safetensors.")] = None,
) -> None:
    """Fit a utility model on the VADER human ratings (default), ETHICS utilitarianism or a pair file."""
    from mlsafety.alignment.values.ethics import load_ethics_utilitarianism
    from mlsafety.alignment.values.pairs import load_pair_file
    from mlsafety.alignment.values.utility import UtilityModel

    loss_name = loss.replace("-", "_")
    if loss_name not in ("bradley_terry", "regression"):
        raise fail(f"--loss must be bradley-terry or regression; got {loss!r}.")
    if ethics and pairs:
        raise fail("give at most one of --ethics and --pairs.")
    if head not in ("linear", "mlp"):
        raise fail(f"--head must be linear or mlp; got {head!r}.")
    check_positive_option(n_pairs, "--n-pairs")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise fail(f"--weight-decay must be a finite number >= 0; got {weight_decay}.")
    check_seed(seed)
    if finetune_layers is not None:
        if not (ethics or pairs):
            raise fail("--finetune-layers needs pairs: give --ethics PATH or --pairs FILE.")
        if finetune_layers < -1:
            raise fail(f"--finetune-layers must be -1 (all) or a number of layers >= 0; got {finetune_layers}.")
        if encoder != "minilm" or encoder_path is not None:
            raise fail("--finetune-layers fine-tunes the default MiniLM; drop --encoder/--encoder-path.")
        if head != "linear":
            raise fail("--finetune-layers trains a linear head on the fine-tuned encoder; drop --head mlp.")
        if not (math.isfinite(epochs) and epochs > 0):
            raise fail(f"--epochs must be a number > 0; got {epochs}.")
    if out is not None:
        check_out_file(out, "--out", [".safetensors"])
    from mlsafety.report.progress import step

    enc = _encoder(encoder, encoder_path)
    model = UtilityModel(encoder=enc, head=head, weight_decay=weight_decay, seed=seed)
    meta: dict[str, Any] = {"seed": seed}
    bar = progress_bar()
    if ethics or pairs:
        if loss_name == "regression":
            raise fail("--loss regression needs ratings; ETHICS and pair files only have pairs. Use bradley-terry.")
        data = load_ethics_utilitarianism(ethics, "train") if ethics else load_pair_file(pairs)  # type: ignore[arg-type]
        with bar:
            embeddings = _encode(enc, data.texts, bar)
            with step(bar, f"fitting the utility on {len(data):,} pairs"):
                model.fit_pairs(embeddings[data.better], embeddings[data.worse])
            if finetune_layers is not None:
                from mlsafety.alignment.values.finetune import FineTunedUtility

                model = FineTunedUtility(n_trainable_layers=finetune_layers, n_epochs=epochs, seed=seed).fit_pairs(
                    data.better_texts, data.worse_texts, init_head=model, progress=bar)
            test_accuracy = {}
            if ethics:
                for split in ("test", "test_hard"):
                    try:
                        test_pairs = load_ethics_utilitarianism(ethics, split)
                    except FileNotFoundError:
                        continue
                    test_accuracy[split] = _pair_accuracy(model, test_pairs, bar)
        meta.update({"data": "ethics" if ethics else "pairs", "path": str(Path(ethics or pairs).resolve())})  # type: ignore[arg-type]
        message = f"trained on {len(data):,} pairs"
        if finetune_layers is not None:
            message += (f" (fine-tuned, {model.seconds_per_epoch_:.0f} s per epoch, "
                        f"{model.cpu_seconds_per_epoch_:.0f} CPU s)")
        for split, row in test_accuracy.items():
            message += (f"; ETHICS {split.replace('_', '-')} pairwise accuracy {row['pairwise_accuracy']:.4f} "
                        f"(95% bootstrap {row['low']:.4f}-{row['high']:.4f})")
    else:
        splits = _vader_splits(seed, n_pairs, domains)
        with bar:
            embeddings = _encode(enc, splits.train.texts, bar)
            with step(bar, "fitting the utility"):
                if loss_name == "regression":
                    model.fit_ratings(embeddings, splits.train.ratings)
                else:
                    model.fit_pairs(embeddings[splits.train_pairs.better], embeddings[splits.train_pairs.worse])
            meta.update({"data": "vader", "n_pairs": n_pairs, "domains": domains})
            test = _pair_accuracy(model, splits.test_pairs, bar)
        message = (f"trained on {len(splits.train_pairs) if loss_name != 'regression' else len(splits.train)} "
                   f"{'pairs' if loss_name != 'regression' else 'rated texts'}; held-out pairwise accuracy "
                   f"{test['pairwise_accuracy']:.4f} (hard pairs {test.get('hard_pairwise_accuracy', float('nan')):.4f})")
    default = default_model_path("minilm-finetuned" if finetune_layers is not None else enc.registry_name)
    path = model.save(out or default, extra=meta)
    console.print(message, markup=False)
    print_written("saved", path)


def _encode(encoder: Any, texts: Any, bar: Any) -> Any:
    import torch

    from mlsafety.report.progress import in_chunks

    return torch.cat(in_chunks(encoder.encode, list(texts), bar, f"encoding {len(texts):,} texts ({encoder.registry_name})"))


@values_app.command("eval")
@cli_errors
def evaluate(
    model: Annotated[Path | None, typer.Option(help="Utility model from `values train` (default: the last one trained with --encoder).")] = None,
    encoder: Annotated[str | None, typer.Option(help="Evaluate the default model trained with this encoder: " + ENCODER_HELP)] = None,
    encoder_path: Annotated[str | None, typer.Option(help="Model folder of a local encoder (if it moved since training).")] = None,
    ethics: Annotated[str | None, typer.Option(help="Evaluate on ETHICS utilitarianism test and test_hard instead.")] = None,
    pairs: Annotated[str | None, typer.Option(help="Evaluate on a CSV of pairs (better,worse) instead.")] = None,
    out: Annotated[Path, typer.Option(help="Report folder (report.html + report.json).")] = Path("values-report"),
    quick: Annotated[bool, typer.Option("--quick", help="Fewer learning-curve points and a shorter optimisation.")] = False,
    goodhart: Annotated[bool, typer.Option(help="Run the Goodhart (optimisation) experiment.")] = True,
    fail_under: Annotated[list[str] | None, typer.Option(help="Exit 1 if METRIC < VALUE, e.g. pairwise_accuracy=0.8.")] = None,
    executor: Annotated[str, typer.Option(metavar="local|ray", help=EXECUTOR_HELP + " Fits the Goodhart experiment's ensemble members.")] = "local",
    address: Annotated[str | None, typer.Option(metavar="auto|HOST:PORT", help=ADDRESS_HELP)] = None,
    workers: Annotated[int | None, typer.Option(metavar="N", help=WORKERS_HELP)] = None,
) -> None:
    """Score a utility model against held-out human judgements and write the values report."""

    thresholds = parse_thresholds(fail_under, "--fail-under")
    if ethics and pairs:
        raise fail("give at most one of --ethics and --pairs.")
    check_out_dir(out)
    runner = make_cli_executor(executor, address, workers)
    from mlsafety._io import locked_output_dir

    with locked_output_dir(out, command="mlsafety values eval"), runner:
        _evaluate(model, ethics, pairs, out, quick, goodhart, thresholds, encoder, encoder_path, runner)


def _evaluate(model: Path | None, ethics: str | None, pairs: str | None, out: Path, quick: bool, goodhart: bool,
              thresholds: dict[str, float], encoder: str | None = None, encoder_path: str | None = None,
              executor: Any = None) -> None:
    from mlsafety.alignment.values.ethics import load_ethics_utilitarianism
    from mlsafety.alignment.values.pairs import load_pair_file

    utility = _load_utility(model, encoder, encoder_path)
    model_name = str(model or _default_for(encoder, encoder_path))
    meta = getattr(utility, "metadata_", {})
    if ethics or pairs:
        from mlsafety.alignment.values.report import FIT_NEXT_STEP, fit_verdict
        from mlsafety.report import CheckResult, Table, render_report

        sets = ({split: load_ethics_utilitarianism(ethics, split) for split in ("test", "test_hard")}
                if ethics else {"pairs": load_pair_file(pairs)})  # type: ignore[arg-type]
        with progress_bar() as bar:
            rows = {name: _pair_accuracy(utility, data, bar) for name, data in sets.items()}
        metrics = {f"{name}_pairwise_accuracy": row["pairwise_accuracy"] for name, row in rows.items()}
        headline = metrics.get("test_pairwise_accuracy", next(iter(metrics.values())))
        metrics["pairwise_accuracy"] = headline
        failing = [k for k, v in thresholds.items() if k in metrics and metrics[k] < v]
        first = next(iter(sets.values()))
        verdict, reason = fit_verdict(headline, len(first))
        note = ", ".join(f"{len(d):,} pairs of {n}" for n, d in sets.items()) + "."
        if ethics:
            from mlsafety.alignment.values.ethics import PAPER_RESULTS

            note += (" Verdict on test; test_hard (adversarially filtered) is reported, not judged. Hendrycks et al. "
                     "(2021), Table 2, test / hard test: " + "; ".join(
                         f"{name} {a:.1f} / {b:.1f}" for name, (a, b) in PAPER_RESULTS.items()) + ".")
        section = CheckResult("fit", "Pairwise accuracy", "fail" if failing else verdict,  # type: ignore[arg-type]
                              ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + f"; {reason}" +
                              "".join(f"; {k} {metrics[k]:.4f} is below --fail-under {thresholds[k]}" for k in failing)
                              + ".", metrics=metrics,
                              tables=[Table("Pairwise accuracy", ["set", "pairs", "accuracy", "95% bootstrap interval"],
                                            [[n, len(d), round(rows[n]["pairwise_accuracy"], 4),
                                              f"{rows[n]['low']:.4f}-{rows[n]['high']:.4f}"]
                                             for n, d in sets.items()])],
                              data_note=note, next_step=FIT_NEXT_STEP)
        sections = [section]
        _, html = render_report(out, sections, {"model": model_name}, title="mlsafety values report")
    else:
        from mlsafety.alignment.values.report import build_values_report
        from mlsafety.alignment.values.vader import load_lexicon

        if meta.get("data", "vader") != "vader":
            raise fail(f"this model was trained on {meta.get('data')} data; evaluate it with --ethics or --pairs.")
        seed = int(meta.get("seed", 0))
        splits = _vader_splits(seed, int(meta.get("n_pairs", 20000)), meta.get("domains"))
        try:
            lexicon = load_lexicon()
        except FileNotFoundError:
            lexicon = None
        with progress_bar() as bar:
            _, html, sections = build_values_report(utility, splits, out, lexicon=lexicon, quick=quick,
                                                    goodhart=goodhart, seed=seed, thresholds=thresholds,
                                                    metadata={"model": model_name}, progress=bar,
                                                    executor=executor)
    for section in sections:
        print_verdict(section.verdict, section.name, section.summary)
    print_written("report", html)
    print_written("json", Path(html).with_name("report.json"))
    broken = [k for k, v in thresholds.items() for s in sections if k in s.metrics and s.metrics[k] < v]
    if broken:
        raise typer.Exit(EXIT_FINDINGS)


@values_app.command("score")
@cli_errors
def score(
    texts: Annotated[list[str], typer.Argument(help="One or more texts to score.")],
    model: Annotated[Path | None, typer.Option(help="Utility model (default: the last one trained with --encoder).")] = None,
    encoder: Annotated[str | None, typer.Option(help="Score with the default model trained with this encoder: " + ENCODER_HELP)] = None,
    encoder_path: Annotated[str | None, typer.Option(help="Model folder of a local encoder (if it moved since training).")] = None,
) -> None:
    """Print the learned utility of each text (higher = more pleasant)."""
    from mlsafety.alignment.values.encoder import check_texts

    items = check_texts(texts)
    utility = _load_utility(model, encoder, encoder_path)
    values = utility.score_texts(items).numpy()
    rating = getattr(utility, "rating_mean_", None)
    for text, value in zip(items, values):
        extra = (f"  (predicted rating {value * utility.rating_scale_ + rating:+.2f} on -4..+4)"
                 if rating is not None else "")
        console.print(f"{float(value):+.4f}{extra}  {text}", markup=False)


@values_app.command("fetch")
@cli_errors
def fetch() -> None:
    """Download the VADER human ratings once (pip download of the vaderSentiment 3.3.2 sources)."""
    from mlsafety.alignment.values.vader import fetch_vader

    console.print(f"VADER ground truth in {fetch_vader()}", markup=False)
