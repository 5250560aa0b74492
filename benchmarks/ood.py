"""OOD detection benchmarks (results: benchmarks/results/ood_*.json; summary: BENCHMARKS.md).

Usage::

    python benchmarks/ood.py knn        # KNN: 10,000 queries vs a 50,000 x 512 bank, faiss vs numpy vs sklearn
    python benchmarks/ood.py knn-index  # KNN on the default model's features: exact vs IVF / HNSW, recall@k
    python benchmarks/ood.py shared     # all detectors from one shared forward pass vs each on its own
    python benchmarks/ood.py compare    # AUROC of mlsafety vs pytorch-ood on the same features (default model)
    python benchmarks/ood.py table      # the full `ood` audit check on the default model (docs/ood.md table)
    python benchmarks/ood.py oe         # Outlier Exposure fine-tuning of the default model: AUROC before/after

Every command runs on one CPU thread (``torch.set_num_threads(1)``) and caches nothing but
its JSON result and, for ``oe``, the fine-tuned checkpoint under ~/.cache/mlsafety/ood/ (``knn-index``
caches the default model's features there).
"""

from __future__ import annotations

import json
import platform
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _save(name: str, payload: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                           "threads": torch.get_num_threads(), "processor": platform.processor()}, **payload}
    path = RESULTS / f"ood_{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {path}")


def _install_torchvision_shim() -> None:
    """pytorch-ood imports torchvision for its model zoo and data sets; torchvision breaks the
    CPU torch build here, so the benchmark gives it empty stand-ins (never used by detectors)."""
    if "torchvision" in sys.modules:
        return

    class _Stub(types.ModuleType):
        def __getattr__(self, name: str) -> type:
            if name.startswith("__"):
                raise AttributeError(name)
            stub = type(name, (), {"__init__": lambda self, *args, **kwargs: None})
            setattr(self, name, stub)
            return stub

    names = ["torchvision", "torchvision.transforms", "torchvision.transforms.functional",
             "torchvision.datasets", "torchvision.datasets.utils", "torchvision.models", "torchvision.models.resnet"]
    for name in names:
        module = _Stub(name)
        module.__path__ = []  # type: ignore[attr-defined]
        sys.modules[name] = module
    for name in names[1:]:
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, sys.modules[name])


# -- KNN search -----------------------------------------------------------------------------
def bench_knn(n_bank: int = 50_000, n_queries: int = 10_000, dim: int = 512, k: int = 50) -> None:
    from sklearn.neighbors import NearestNeighbors

    from mlsafety.monitoring.ood import KNN

    generator = torch.Generator().manual_seed(0)
    bank = torch.randn(n_bank, dim, generator=generator).relu()
    queries = torch.randn(n_queries, dim, generator=generator).relu()
    logits_bank, logits_queries = torch.randn(n_bank, 10), torch.randn(n_queries, 10)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    detector = KNN(k=k).fit_features(bank, logits_bank)
    ours = detector.score_features(queries, logits_queries).double().numpy()
    timings["mlsafety (faiss IndexFlatL2)"] = time.perf_counter() - start

    start = time.perf_counter()
    b = (bank / bank.norm(dim=1, keepdim=True)).numpy().astype(np.float64)
    q = (queries / queries.norm(dim=1, keepdim=True)).numpy().astype(np.float64)
    kth = []
    for chunk in np.array_split(q, 20):  # 500 x 50,000 distance blocks
        squared = (chunk**2).sum(1, keepdims=True) - 2 * chunk @ b.T + (b**2).sum(1)
        kth.append(np.sqrt(np.maximum(np.partition(squared, k - 1, axis=1)[:, k - 1], 0)))
    reference = np.concatenate(kth)
    timings["numpy exact (float64 matmul + partition)"] = time.perf_counter() - start

    start = time.perf_counter()
    search = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(b.astype(np.float32))
    distances, _ = search.kneighbors(q.astype(np.float32))
    timings["scikit-learn NearestNeighbors (brute)"] = time.perf_counter() - start

    agreement = {"max_abs_diff_vs_numpy": float(np.abs(ours - reference).max()),
                 "max_abs_diff_vs_sklearn": float(np.abs(ours - distances[:, -1]).max())}
    base = timings["mlsafety (faiss IndexFlatL2)"]
    print(json.dumps({"seconds": timings, "speedup": {k_: v / base for k_, v in timings.items()}, **agreement},
                     indent=2))
    _save("knn", {"n_bank": n_bank, "n_queries": n_queries, "dim": dim, "k": k, "seconds": timings,
                  "ratio_to_mlsafety": {k_: v / base for k_, v in timings.items()}, "agreement": agreement})


def bench_knn_index(k: int = 50, repeats: int = 3) -> None:
    """Approximate KNN search against exact search on the default model's penultimate features:
    the 55,000 training images as the bank, the 10,000 test images as queries, k = 50, one thread
    for faiss and BLAS; scoring time (the minimum of ``repeats`` runs, CPU seconds) and recall@k
    against exact search, next to exact numpy (float64 matmul + partition)."""
    import faiss
    from threadpoolctl import threadpool_limits

    from mlsafety.data import default_splits
    from mlsafety.models import cache_dir, load_default_classifier
    from mlsafety.monitoring.ood import KNN

    faiss.omp_set_num_threads(1)
    path = cache_dir() / "ood" / "knn_index_features.npz"
    if not path.exists():
        classifier, splits = load_default_classifier(), default_splits()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, bank=classifier.features(splits["train"].images)[0].numpy(),
                 queries=classifier.features(splits["test"].images)[0].numpy())
    stored = np.load(path)
    bank, queries = torch.from_numpy(stored["bank"]), torch.from_numpy(stored["queries"])
    no_logits_bank, no_logits_queries = torch.zeros(len(bank), 1), torch.zeros(len(queries), 1)

    def cpu_seconds(function) -> float:
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            function()
            best = min(best, time.process_time() - start)
        return best

    def normalised(f: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray((f / f.norm(dim=1, keepdim=True)).numpy())

    b, q = normalised(bank).astype(np.float64), normalised(queries).astype(np.float64)

    def numpy_exact() -> np.ndarray:
        kth = []
        for chunk in np.array_split(q, 20):
            squared = (chunk**2).sum(1, keepdims=True) - 2 * chunk @ b.T + (b**2).sum(1)
            kth.append(np.sqrt(np.maximum(np.partition(squared, k - 1, axis=1)[:, k - 1], 0)))
        return np.concatenate(kth)

    rows: dict[str, dict[str, float]] = {}
    with threadpool_limits(1):
        reference = numpy_exact()
        rows["numpy exact"] = {"score_seconds": cpu_seconds(numpy_exact), "fit_seconds": 0.0}
        exact = KNN(k=k, index="exact").fit_features(bank, no_logits_bank)
        _, truth = exact.index_.search(normalised(queries), k)
        for index in ("exact", "ivf", "hnsw"):
            start = time.process_time()
            detector = KNN(k=k, index=index).fit_features(bank, no_logits_bank)
            fit = time.process_time() - start
            scores = detector.score_features(queries, no_logits_queries).double().numpy()
            seconds = cpu_seconds(lambda d=detector: d.score_features(queries, no_logits_queries))
            _, found = detector.index_.search(normalised(queries), k)
            recall = float(np.mean([len(np.intersect1d(a, c)) / k for a, c in zip(found, truth)]))
            rows[f"mlsafety KNN(index={index!r})"] = {
                "fit_seconds": fit, "score_seconds": seconds, "recall_at_k": recall,
                "max_relative_error_kth_distance": float(np.abs(scores - reference).max() / reference.min()),
                "median_relative_error_kth_distance": float(np.median(np.abs(scores - reference) / reference)),
                "faiss": type(detector.index_).__name__,
                **({"n_lists": detector.index_.nlist, "n_probe": detector.index_.nprobe} if index == "ivf" else {}),
            }
    base = rows["numpy exact"]["score_seconds"]
    for row in rows.values():
        row["speedup_vs_numpy"] = base / row["score_seconds"]
    print(f"{'search':32s} {'fit s':>7s} {'score s':>8s} {'vs numpy':>9s} {'recall@k':>9s}")
    for name, row in rows.items():
        print(f"{name:32s} {row['fit_seconds']:7.2f} {row['score_seconds']:8.2f} {row['speedup_vs_numpy']:8.1f}x "
              f"{row.get('recall_at_k', 1.0):9.4f}")
    import os

    _save("knn_index", {"bank": list(bank.shape), "queries": list(queries.shape), "k": k, "rows": rows,
                        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "load_average": os.getloadavg()})


# -- shared forward pass ---------------------------------------------------------------------
def _default_data(n_fit: int, n_test: int, n_ood: int) -> tuple[Any, Any, Any, dict[str, Any]]:
    from mlsafety.data import default_splits
    from mlsafety.data.ood import ood_splits
    from mlsafety.models import load_default_classifier

    splits = default_splits()
    classifier = load_default_classifier()
    test_ood = ood_splits(splits["test"].image_shape, n_ood, seed=0)["test"]
    return classifier, splits["train"].head(n_fit, seed=0), splits["test"].head(n_test, seed=0), test_ood


def bench_shared(n_fit: int = 5000, n_test: int = 2000, n_ood: int = 500) -> None:
    from mlsafety.monitoring.ood.tuning import FeatureSet
    from mlsafety.registry import OOD_DETECTORS

    classifier, fit, test, test_ood = _default_data(n_fit, n_test, n_ood)
    names = [n for n in OOD_DETECTORS.names() if not OOD_DETECTORS.get(n).needs_inputs]
    warnings.simplefilter("ignore")

    start = time.perf_counter()
    cached_fit = FeatureSet.compute(classifier, fit)
    cached = {"in": FeatureSet.compute(classifier, test), **{k: FeatureSet.compute(classifier, v)
                                                              for k, v in test_ood.items()}}
    forward = time.perf_counter() - start
    shared_scores = {}
    for name in names:
        detector = OOD_DETECTORS.create(name).fit_features(cached_fit.features, cached_fit.logits, cached_fit.labels,
                                                           head=classifier.head)
        shared_scores[name] = {k: detector.score_features(s.features, s.logits) for k, s in cached.items()}
    shared = time.perf_counter() - start

    start = time.perf_counter()
    separate_scores = {}
    for name in names:
        detector = OOD_DETECTORS.create(name).fit(classifier, fit)
        separate_scores[name] = {"in": detector.score(test.images),
                                 **{k: detector.score(v.images) for k, v in test_ood.items()}}
    separate = time.perf_counter() - start
    identical = all(torch.allclose(shared_scores[n][k], separate_scores[n][k], atol=1e-4)
                    for n in names for k in shared_scores[n])
    result = {"detectors": names, "n_fit": n_fit, "n_test": n_test, "n_ood_per_set": n_ood,
              "n_ood_sets": len(test_ood), "seconds_shared": shared, "seconds_shared_forward_only": forward,
              "seconds_separate": separate, "speedup": separate / shared, "identical_scores": identical}
    print(json.dumps(result, indent=2))
    _save("shared", result)


# -- pytorch-ood agreement -------------------------------------------------------------------
def bench_compare(n_fit: int = 10_000, n_test: int = 5000, n_ood: int = 1000) -> None:
    _install_torchvision_shim()
    import pytorch_ood.detector as pod

    from mlsafety.metrics.ood import auroc
    from mlsafety.monitoring.ood import (
        ASH,
        GEN,
        KNN,
        MSP,
        ODIN,
        Energy,
        Entropy,
        GradNorm,
        KLMatching,
        Mahalanobis,
        MaxLogit,
        ReAct,
        RelativeMahalanobis,
        ViM,
    )
    from mlsafety.monitoring.ood.tuning import FeatureSet

    classifier, fit, test, test_ood = _default_data(n_fit, n_test, n_ood)
    head = classifier.head
    f = FeatureSet.compute(classifier, fit)
    sets = {"in": FeatureSet.compute(classifier, test), **{k: FeatureSet.compute(classifier, v)
                                                            for k, v in test_ood.items()}}
    react = pod.ReAct(torch.nn.Identity(), head, percentile=0.9)
    react.fit_feature_maps(f.features, f.labels)
    ash = pod.ASH(torch.nn.Identity(), lambda m: head(m.flatten(1)), percentile=0.9, variant="ash-s")
    gradnorm = pod.GradNorm(head, param_filter=lambda n: n == "weight")
    pairs = {
        "msp": (MSP(), lambda s: pod.MaxSoftmax.score(s.logits)),
        "max_logit": (MaxLogit(), lambda s: pod.MaxLogit.score(s.logits)),
        "energy": (Energy(), lambda s: pod.EnergyBased.score(s.logits)),
        "entropy": (Entropy(), lambda s: pod.Entropy.score(s.logits)),
        "gen": (GEN(clip=1e-7), lambda s: pod.GEN.score(s.logits, gamma=0.1)),
        "gen (paper: no clip)": (GEN(), lambda s: pod.GEN.score(s.logits, gamma=0.1)),
        "kl_matching": (KLMatching(), pod.KLMatching(None).fit_logits(f.logits).predict_logits),
        "mahalanobis": (Mahalanobis(), pod.Mahalanobis(None).fit_features(f.features, f.labels).predict_features),
        "relative_mahalanobis": (RelativeMahalanobis(),
                                 pod.RMD(None).fit_features(f.features, f.labels).predict_features),
        "knn": (KNN(k=50), pod.KNN(None, k=50).fit_features(f.features, f.labels).predict_features),
        "vim": (ViM(n_components=64),
                pod.ViM(None, d=64, w=head.weight, b=head.bias).fit_features(f.features, f.labels).predict_features),
        "react": (ReAct(percentile=90), lambda s: react.predict_feature_maps(s.features)),
        "ash": (ASH(percentile=90), lambda s: ash.predict_feature_maps(s.features[:, :, None, None])),
        "gradnorm": (GradNorm(), lambda s: gradnorm.predict(s.features)),
    }
    rows: dict[str, dict[str, Any]] = {}
    for name, (ours, theirs) in pairs.items():
        ours.fit_features(f.features, f.logits, f.labels, head=head)
        with torch.no_grad():
            def adapt(s, fn=theirs, key=name):
                return fn(s.logits) if key in ("kl_matching",) else (
                    fn(s.features) if key in ("mahalanobis", "relative_mahalanobis", "knn", "vim") else fn(s))
            ours_in, theirs_in = ours.score_features(sets["in"].features, sets["in"].logits), adapt(sets["in"])
            row = {}
            for key in test_ood:
                s = sets[key]
                a = auroc(ours_in, ours.score_features(s.features, s.logits))
                b = auroc(theirs_in, adapt(s))
                row[key] = {"mlsafety": a, "pytorch_ood": b, "diff": abs(a - b)}
        rows[name] = row
    # ODIN needs the model: 500 ID and 300 OOD images per set
    odin_ours = ODIN(temperature=1000.0, noise=0.0014).fit(classifier, fit)
    odin_theirs = pod.ODIN(classifier.forward, eps=0.0014, temperature=1000.0)
    x_in = test.images[:500]
    with classifier.evaluating():
        theirs_in = odin_theirs.predict(x_in)
        row = {}
        for key, data in test_ood.items():
            a = auroc(odin_ours.score(x_in), odin_ours.score(data.images[:300]))
            b = auroc(theirs_in, odin_theirs.predict(data.images[:300]))
            row[key] = {"mlsafety": a, "pytorch_ood": b, "diff": abs(a - b)}
    rows["odin"] = row
    worst = max(cell["diff"] for name, row in rows.items() for cell in row.values() if "no clip" not in name)
    for name, row in rows.items():
        print(f"{name:22s} max |ΔAUROC| = {max(c['diff'] for c in row.values()):.2e}")
    print(f"worst |ΔAUROC| over all detectors and sets: {worst:.2e}")
    _save("compare", {"n_fit": n_fit, "n_test": n_test, "n_ood_per_set": n_ood, "max_abs_diff": worst,
                      "auroc": rows})


# -- the audit check table -------------------------------------------------------------------
def bench_table(quick: bool = False) -> None:
    from mlsafety.audit.base import AuditContext
    from mlsafety.data import default_splits
    from mlsafety.models import load_default_classifier
    from mlsafety.registry import CHECKS

    splits = default_splits()
    context = AuditContext(load_default_classifier(), splits["test"], validation=splits["validation"],
                           train=splits["train"], quick=quick, is_default=True)
    start = time.perf_counter()
    result = CHECKS.create("ood").run(context)
    seconds = time.perf_counter() - start
    lines = [f"verdict: {result.verdict} -- {result.summary}", ""]
    for table in result.tables:
        lines += [f"**{table.title}**", "", "| " + " | ".join(table.columns) + " |",
                  "|" + "---|" * len(table.columns)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table.rows]
        lines.append("")
    lines += [f"- {note}" for note in result.notes]
    print("\n".join(lines))
    print(f"seconds: {seconds:.1f}")
    _save("table_quick" if quick else "table", {"seconds": seconds, "verdict": result.verdict,
                                                "summary": result.summary, "metrics": result.metrics,
                                                "markdown": "\n".join(lines), "details": result.details})


# -- Outlier Exposure ------------------------------------------------------------------------
def bench_oe(epochs: int = 1, learning_rate: float = 1e-3, n_outliers: int = 5000, n_test: int = 5000,
             n_ood: int = 1000, n_fit: int = 5000) -> None:
    from mlsafety.data import default_splits
    from mlsafety.data.ood import auxiliary_outliers, ood_splits
    from mlsafety.metrics.ood import ood_metrics
    from mlsafety.models import accuracy, cache_dir, load_classifier, load_default_classifier, save_checkpoint
    from mlsafety.monitoring.ood import outlier_exposure_finetune
    from mlsafety.monitoring.ood.tuning import FeatureSet
    from mlsafety.registry import OOD_DETECTORS

    splits = default_splits()
    checkpoint = cache_dir() / "ood" / "oe_default_small_cnn.safetensors"
    training: dict[str, Any] = {"epochs": epochs, "learning_rate": learning_rate, "weight": 0.5,
                                "n_outliers": n_outliers, "outliers": "auxiliary_outliers (scikit-image group "
                                "'auxiliary', disjoint from every test OOD set)"}
    if not checkpoint.exists():
        classifier = load_default_classifier()
        outliers = auxiliary_outliers(splits["train"].image_shape, n_outliers, seed=0)
        start = time.perf_counter()
        outlier_exposure_finetune(classifier, splits["train"], outliers, epochs=epochs, learning_rate=learning_rate,
                                  weight=0.5, seed=0)
        training["seconds"] = time.perf_counter() - start
        save_checkpoint(classifier, checkpoint, "small_cnn", {"in_channels": 1, "n_classes": 10},
                        extra={"outlier_exposure": training})
    else:
        from safetensors import safe_open

        with safe_open(str(checkpoint), "pt") as handle:
            training = json.loads(handle.metadata()["extra"]).get("outlier_exposure", training)
    models = {"baseline": load_default_classifier(), "outlier_exposure": load_classifier(checkpoint)}
    test = splits["test"].head(n_test, seed=0)
    fit = splits["train"].head(n_fit, seed=1)
    test_ood = ood_splits(test.image_shape, n_ood, seed=0)["test"]
    names = [n for n in OOD_DETECTORS.names() if not OOD_DETECTORS.get(n).needs_inputs]
    warnings.simplefilter("ignore")
    report: dict[str, Any] = {"training": training, "n_test": n_test, "n_ood_per_set": n_ood, "models": {}}
    for label, classifier in models.items():
        f = FeatureSet.compute(classifier, fit)
        sets = {"in": FeatureSet.compute(classifier, test), **{k: FeatureSet.compute(classifier, v)
                                                                for k, v in test_ood.items()}}
        per_detector = {}
        for name in names:
            detector = OOD_DETECTORS.create(name).fit_features(f.features, f.logits, f.labels, head=classifier.head)
            scores_in = detector.score_features(sets["in"].features, sets["in"].logits)
            per_set = {k: ood_metrics(scores_in, detector.score_features(sets[k].features, sets[k].logits))["auroc"]
                       for k in test_ood}
            per_detector[name] = {"per_set": per_set, "mean": float(np.mean(list(per_set.values())))}
        report["models"][label] = {"test_accuracy": accuracy(classifier, splits["test"]), "auroc": per_detector}
    for name in names:
        before = report["models"]["baseline"]["auroc"][name]["mean"]
        after = report["models"]["outlier_exposure"]["auroc"][name]["mean"]
        print(f"{name:22s} mean AUROC {before:.4f} -> {after:.4f} ({after - before:+.4f})")
    for label in models:
        print(label, "test accuracy", report["models"][label]["test_accuracy"])
    _save("outlier_exposure", report)


COMMANDS = {"knn": bench_knn, "knn-index": bench_knn_index, "shared": bench_shared, "compare": bench_compare,
            "table": bench_table,
            "table-quick": lambda: bench_table(quick=True), "oe": bench_oe}

if __name__ == "__main__":
    torch.set_num_threads(1)
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    COMMANDS[sys.argv[1]]()
