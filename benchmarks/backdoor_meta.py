"""Model-level backdoor detection on the shadow-model zoo: leave-one-family-out and calibration.

Uses the zoo built by ``mlsafety backdoor zoo build --n-clean 38 --n-backdoored 40`` (default
configuration: width-16 SmallCNN, 10,000 Fashion-MNIST training images, 3 epochs) and writes
``benchmarks/results/backdoor_meta.json`` atomically after every fitted detector (rerunning
skips finished stages, so an interrupted run resumes).

* ``lofo``: leave-one-attack-family-out with cross-fitting. The clean shadows are split in two
  folds (even / odd index). For each family F and fold k, MNTD and ULP are trained on the
  clean shadows of the other fold and the backdoored shadows of the *other* families, and
  tested on the clean shadows of fold k against the F models: every test model is scored
  by a detector that never saw it, and no detector saw family F. AUROC and TPR at 5% FPR are
  averaged over the two folds; 95% intervals from 2,000 bootstrap resamples of the test models
  (within each fold and class).
* ``reverse``: Neural Cleanse and TABOR need no training, so every zoo model is a test model:
  the norm ratio (median over smallest reversed-trigger norm) and the MAD anomaly index with
  the audit's quick settings, per family.
* ``reverse_full``: Neural Cleanse with the audit's full settings (120 steps), as many models as a
  time budget allows (interleaved by family; resumable).
* ``rule``: the calibrated rule (Neural Cleanse norm ratio, optionally + TABOR's) with quick
  settings on models outside its null: the meta-training clean shadows and every backdoored one.
* ``lofo_rule``: the audit's rule (per-class Neural Cleanse norms + universal perturbations, each
  class against the same class of clean shadows) on every family, cross-fitted over two folds of
  clean shadows; it is calibrated on clean shadows only, so every family is held out by construction.
* ``holdout``: the same rule on the held-out-trigger models of ``benchmarks/backdoor_holdout.py``.
* ``calibration``: the earlier audit rule (calibrated Neural Cleanse norm ratio + MNTD + ULP, minimum
  p-value recalibrated, p <= 0.05) on the held-out clean shadows: leave-one-out false-positive
  rate, for the quick and the full settings.

    nice -n 10 python benchmarks/backdoor_meta.py [--stages lofo,reverse,calibration]
    nice -n 10 python benchmarks/backdoor_meta.py --stages reverse_full --budget 1500   # resumable
    nice -n 10 python benchmarks/backdoor_meta.py --stages lofo_rule,holdout      # the audit's rule
    python benchmarks/backdoor_meta.py --stages report     # the markdown tables of docs/backdoor.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlsafety.data import default_splits
from mlsafety.monitoring.backdoor import NeuralCleanse
from mlsafety.monitoring.backdoor._model_detector import BACKDOOR_MODEL_DETECTORS
from mlsafety.monitoring.backdoor.calibration import calibrated_decision, class_conditional_scores
from mlsafety.monitoring.backdoor.model_level import (
    class_vectors,
    fitted_meta_detectors,
    meta_key,
    reverse_engineering_key,
    reverse_engineering_statistics,
    shadow_class_vectors,
    split_clean_rows,
)
from mlsafety.monitoring.backdoor.tabor import TABOR
from mlsafety.monitoring.backdoor.zoo import FAMILIES, Zoo, ZooConfig

torch.set_num_threads(1)
# the per-class statistics of the audit's verdict (mlsafety.monitoring.backdoor.model_level)
AUDIT_STATISTICS = ("neural_cleanse_class", "universal_perturbation_class")
RESULTS = Path(__file__).parent / "results" / "backdoor_meta.json"
# the audit's settings (mlsafety.audit.checks.backdoor.NC_SETTINGS)
NC_SETTINGS = {"quick": {"steps": 25, "batch_size": 8, "n_samples": 128},
               "full": {"steps": 120, "batch_size": 16, "n_samples": 1000}}


def save(payload: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    temporary = RESULTS.with_name(f".{RESULTS.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=1))
    os.replace(temporary, RESULTS)


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float = 0.05) -> float:
    """TPR at the threshold that flags at most ``fpr`` of the clean models (strictly above it)."""
    negatives = np.sort(scores[labels == 0])
    k = int(np.floor(fpr * negatives.size))
    threshold = negatives[-k - 1] if k < negatives.size else -np.inf
    return float(np.mean(scores[labels == 1] > threshold))


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count one half); much faster than sklearn inside a bootstrap."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    greater = (positives[:, None] > negatives[None, :]).sum() + 0.5 * (positives[:, None] == negatives[None, :]).sum()
    return float(greater / (positives.size * negatives.size))


def fold_metrics(folds: list[tuple[np.ndarray, np.ndarray]], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """AUROC and TPR@5%FPR averaged over folds [(labels, scores)], with bootstrap intervals."""
    rng = np.random.default_rng(seed)

    def metrics(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
        return (float(np.mean([auroc(y, s) for y, s in pairs])),
                float(np.mean([tpr_at_fpr(y, s) for y, s in pairs])))

    mean_auroc, mean_tpr = metrics(folds)
    boot = []
    for _ in range(n_boot):
        resampled = []
        for labels, scores in folds:
            pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
            index = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
            resampled.append((labels[index], scores[index]))
        boot.append(metrics(resampled))
    boot_array = np.array(boot)
    return {"auroc": mean_auroc, "auroc_ci": np.percentile(boot_array[:, 0], [2.5, 97.5]).round(3).tolist(),
            "tpr_at_5fpr": mean_tpr, "tpr_ci": np.percentile(boot_array[:, 1], [2.5, 97.5]).round(3).tolist(),
            "n_backdoored": int(sum((y == 1).sum() for y, _ in folds)),
            "n_clean": int(sum((y == 0).sum() for y, _ in folds))}


def stage_lofo(zoo: Zoo, payload: dict[str, Any]) -> None:
    clean = zoo.load_models("clean")
    backdoored = zoo.load_models("backdoored")
    folds = [clean[0::2], clean[1::2]]
    scores = payload.setdefault("lofo_scores", {})
    for name in ("mntd", "ulp"):
        for family in FAMILIES:
            for k in (0, 1):
                key = f"{name}/{family}/{k}"
                if key in scores:
                    continue
                train = folds[1 - k] + [pair for pair in backdoored if pair[0]["family"] != family]
                test = folds[k] + [pair for pair in backdoored if pair[0]["family"] == family]
                start = time.perf_counter()
                detector = BACKDOOR_MODEL_DETECTORS.create(name, seed=0)
                detector.fit([m for _, m in train], [int(r["family"] is not None) for r, _ in train])
                scores[key] = {"labels": [int(r["family"] is not None) for r, _ in test],
                               "names": [r["name"] for r, _ in test],
                               "scores": detector.score_models([m for _, m in test]).tolist(),
                               "n_train": len(train), "seconds": round(time.perf_counter() - start, 1)}
                print(key, scores[key]["seconds"], flush=True)
                save(payload)
    table: dict[str, Any] = {}
    for name in ("mntd", "ulp"):
        table[name] = {family: fold_metrics([(np.array(scores[f"{name}/{family}/{k}"]["labels"]),
                                              np.array(scores[f"{name}/{family}/{k}"]["scores"])) for k in (0, 1)])
                       for family in FAMILIES}
        table[name]["mean_auroc"] = float(np.mean([table[name][f]["auroc"] for f in FAMILIES]))
    payload["lofo"] = table
    save(payload)


def reverse_statistics(zoo: Zoo, method: str, settings: dict[str, Any], reference: Any,
                       names: list[str] | None = None) -> dict[str, Any]:
    factory = NeuralCleanse if method == "neural_cleanse" else TABOR
    key = reverse_engineering_key(method, settings, 0, reference)
    return zoo.statistics(key, lambda model: reverse_engineering_statistics(factory(seed=0, **settings).fit(
        model, reference)), names=names)


def stage_reverse(zoo: Zoo, payload: dict[str, Any]) -> None:
    reference = default_splits()["validation"]
    rows = {row["name"]: row for row in zoo.rows()}
    table: dict[str, Any] = {}
    for method in ("neural_cleanse", "tabor"):
        start = time.perf_counter()
        stats = reverse_statistics(zoo, method, NC_SETTINGS["quick"], reference)
        for statistic in ("norm_ratio", "anomaly_index"):
            entry: dict[str, Any] = {}
            for family in FAMILIES:
                names = [n for n in stats if rows[n]["family"] in (None, family)]
                labels = np.array([int(rows[n]["family"] is not None) for n in names])
                entry[family] = fold_metrics([(labels, np.array([stats[n][statistic] for n in names]))])
            entry["mean_auroc"] = float(np.mean([entry[f]["auroc"] for f in FAMILIES]))
            table[f"{method}:{statistic}"] = entry
        # does the smallest trigger belong to the true target?
        hits = [stats[n]["smallest_class"] == rows[n]["attack"]["target_class"] for n in stats
                if rows[n]["family"] is not None]
        table[f"{method}:target_smallest"] = float(np.mean(hits))
        table[f"{method}:seconds"] = round(time.perf_counter() - start, 1)
        payload["reverse_quick"] = table
        save(payload)


def stage_reverse_full(zoo: Zoo, payload: dict[str, Any], budget_seconds: float = 1800.0) -> None:
    """Neural Cleanse with the audit's full settings, models interleaved by family, until the budget
    is spent (resumable: every model's statistics are cached in the zoo); table on the models done."""
    reference = default_splits()["validation"]
    rows = {row["name"]: row for row in zoo.rows()}
    by_kind: dict[Any, list[str]] = {}
    for name, row in rows.items():
        by_kind.setdefault(row["family"], []).append(name)
    # clean models from the last (the calibration shadows, already computed by the calibration stage)
    groups = [sorted(names, reverse=family is None) for family, names in by_kind.items()]
    order = [name for group in zip(*groups, strict=False) for name in group]
    order += [name for name in sorted(rows) if name not in order]
    key = reverse_engineering_key("neural_cleanse", NC_SETTINGS["full"], 0, reference)
    start = time.perf_counter()
    for name in order:
        if time.perf_counter() - start > budget_seconds:
            break
        reverse_statistics(zoo, "neural_cleanse", NC_SETTINGS["full"], reference, names=[name])
    path = zoo.folder / "statistics.json"
    stats = json.loads(path.read_text()).get(key, {})
    table: dict[str, Any] = {}
    for statistic in ("norm_ratio", "anomaly_index"):
        entry: dict[str, Any] = {}
        for family in FAMILIES:
            names = [n for n in stats if rows[n]["family"] in (None, family)]
            labels = np.array([int(rows[n]["family"] is not None) for n in names])
            if labels.min() < 1 <= labels.max():
                entry[family] = fold_metrics([(labels, np.array([stats[n][statistic] for n in names]))])
        entry["mean_auroc"] = float(np.mean([entry[f]["auroc"] for f in FAMILIES if f in entry]))
        table[f"neural_cleanse:{statistic}"] = entry
    hits = [stats[n]["smallest_class"] == rows[n]["attack"]["target_class"] for n in stats
            if rows[n]["family"] is not None]
    table["neural_cleanse:target_smallest"] = float(np.mean(hits)) if hits else None
    table["n_models"] = len(stats)
    payload["reverse_full"] = table
    save(payload)


def stage_calibration(zoo: Zoo, payload: dict[str, Any]) -> None:
    reference = default_splits()["validation"]
    _, calibration_rows = split_clean_rows(zoo.rows("clean"))
    names = [row["name"] for row in calibration_rows]
    detectors = fitted_meta_detectors(zoo)
    null: dict[str, list[float]] = {}
    for name, detector in detectors.items():
        values = zoo.statistics(meta_key(detector), detector.score_model, kind="clean", names=names)
        null[name] = [values[n] for n in names]
    result: dict[str, Any] = {"n_calibration_clean": len(names), "calibration_models": names}
    for mode in ("quick", "full"):
        start = time.perf_counter()
        stats = reverse_statistics(zoo, "neural_cleanse", NC_SETTINGS[mode], reference, names=names)
        table = {**null, "neural_cleanse_norm_ratio": [stats[n]["norm_ratio"] for n in names]}
        decision = calibrated_decision({name: 0.0 for name in table}, table, alpha=0.05, zoo=zoo.config.identity)
        only_nc = calibrated_decision({"x": 0.0}, {"x": table["neural_cleanse_norm_ratio"]}, alpha=0.05)
        result[mode] = {"measured_fpr_combined": decision.measured_fpr, "measured_fpr_nc_only": only_nc.measured_fpr,
                        "uncalibrated_mad_fpr": float(np.mean([stats[n]["anomaly_index"] > 2 for n in names])),
                        "nc_norm_ratio": table["neural_cleanse_norm_ratio"],
                        "seconds": round(time.perf_counter() - start, 1)}
        payload["calibration"] = result
        save(payload)


def stage_rule(zoo: Zoo, payload: dict[str, Any]) -> None:
    """The calibrated rule at p <= 0.05 (quick settings; Neural Cleanse also at full settings) on
    models outside its null: the 12 meta-training clean shadows (never in the null) and every
    backdoored model. Reverse-engineering statistics only: the meta-detectors were trained on these
    models."""
    reference = default_splits()["validation"]
    _, calibration_rows = split_clean_rows(zoo.rows("clean"))
    calibration = [row["name"] for row in calibration_rows]
    rows = {row["name"]: row for row in zoo.rows()}
    stats = {method: reverse_statistics(zoo, method, NC_SETTINGS["quick"], reference)
             for method in ("neural_cleanse", "tabor")}
    stats["neural_cleanse_full"] = reverse_statistics(zoo, "neural_cleanse", NC_SETTINGS["full"], reference)
    result: dict[str, Any] = {}
    rules = {"neural_cleanse": ["neural_cleanse"], "neural_cleanse+tabor": ["neural_cleanse", "tabor"],
             "neural_cleanse_full": ["neural_cleanse_full"]}
    for label, methods in rules.items():
        null = {m: [stats[m][n]["norm_ratio"] for n in calibration] for m in methods}
        entry = {}
        for family in (None, *FAMILIES):
            names = [n for n, r in rows.items() if r["family"] == family and n not in calibration]
            flags = [calibrated_decision({m: stats[m][n]["norm_ratio"] for m in methods}, null).is_backdoored
                     for n in names]
            entry[family or "held_out_clean"] = {"flagged": int(sum(flags)), "n": len(names)}
        result[label] = entry
    payload["calibrated_rule_quick"] = result
    save(payload)


def class_statistics(zoo: Zoo, names: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
    """``{model: {statistic: per-class vector}}`` with the audit's model-level settings (cached in the zoo)."""
    reference = default_splits()["validation"]
    names = names if names is not None else [row["name"] for row in zoo.rows()]
    tables = shadow_class_vectors(zoo, names, reference)
    return {name: {statistic: tables[statistic][i] for statistic in tables} for i, name in enumerate(names)}


def rule_scores(vectors: dict[str, dict[str, list[float]]], null_names: list[str], test: dict[str, Any],
                statistics: tuple[str, ...] = AUDIT_STATISTICS) -> dict[str, dict[str, float]]:
    """The audit's calibrated rule on each test model against the clean shadows ``null_names``:
    the combined statistic (largest standardised class-conditional score, higher = more suspicious),
    the combined p-value and the most deviant class of the first statistic."""
    null = {s: [vectors[n][s] for n in null_names] for s in statistics}
    out = {}
    for name, vector in test.items():
        decision = calibrated_decision({s: vector[s] for s in statistics}, null, alpha=0.05)
        pool = np.array([class_conditional_scores(np.vstack([null[s], np.asarray(vector[s])[None]]))[0]
                         for s in statistics])
        median = np.median(pool, axis=1)
        scale = 1.4826 * np.median(np.abs(pool - median[:, None]), axis=1)
        scale = np.where(scale > 0, scale, pool.std(axis=1) + 1e-12)
        out[name] = {"score": float(((pool[:, -1] - median) / scale).max()), "p": decision.combined_p_value,
                     "flagged": decision.is_backdoored, "class": decision.classes.get(statistics[0]),
                     "classes": decision.classes}
    return out


def cross_fitted(zoo: Zoo, vectors: dict[str, Any], positives: dict[str, dict[str, Any]],
                 statistics: tuple[str, ...] = AUDIT_STATISTICS) -> dict[str, Any]:
    """Two folds of the clean shadows (even / odd): the rule calibrated on one fold scores the other
    fold's clean models and every positive; per group of positives, AUROC and TPR at 5% FPR of the
    combined statistic (averaged over the folds, bootstrap intervals), and the share flagged at p <= 0.05."""
    clean = [row["name"] for row in zoo.rows("clean")]
    folds = [clean[0::2], clean[1::2]]
    groups: dict[str, list[str]] = {}
    for name, info in positives.items():
        groups.setdefault(info["group"], []).append(name)
    scored = []
    for k in (0, 1):
        test = {n: vectors[n] for n in folds[k]} | {n: info["vectors"] for n, info in positives.items()}
        scored.append(rule_scores(vectors, folds[1 - k], test, statistics))
    table: dict[str, Any] = {}
    for group, names in groups.items():
        pairs = []
        for k in (0, 1):
            members = folds[k] + names
            pairs.append((np.array([int(n in names) for n in members]),
                          np.array([scored[k][n]["score"] for n in members])))
        entry = fold_metrics(pairs)
        entry["flagged_at_p05"] = float(np.mean([scored[k][n]["flagged"] for k in (0, 1) for n in names]))
        entry["target_found"] = float(np.mean([scored[0][n]["class"] == positives[n]["target"] for n in names]))
        table[group] = entry
    table["clean_flagged_at_p05"] = float(np.mean([scored[k][n]["flagged"] for k in (0, 1) for n in folds[k]]))
    table["mean_auroc"] = float(np.mean([table[g]["auroc"] for g in groups]))
    return table


def stage_lofo_rule(zoo: Zoo, payload: dict[str, Any]) -> None:
    """The audit's calibrated rule on every family. Nothing in it is trained on backdoored models
    (only clean shadows calibrate it), so every family is held out by construction."""
    start = time.process_time()
    vectors = class_statistics(zoo)
    positives = {row["name"]: {"group": row["family"], "target": row["attack"]["target_class"],
                               "vectors": vectors[row["name"]]} for row in zoo.rows("backdoored")}
    result = {}
    for label, statistics in (("audit", AUDIT_STATISTICS), ("neural_cleanse_class", ("neural_cleanse_class",)),
                              ("universal_perturbation_class", ("universal_perturbation_class",))):
        result[label] = cross_fitted(zoo, vectors, positives, statistics)
    # the audit's own null (the 26 calibration shadows) against the 12 clean models outside it
    _, calibration_rows = split_clean_rows(zoo.rows("clean"))
    null_names = [row["name"] for row in calibration_rows]
    outside = [row["name"] for row in zoo.rows("clean") if row["name"] not in null_names]
    scored = rule_scores(vectors, null_names, {n: vectors[n] for n in outside})
    result["audit_null"] = {"n_calibration": len(null_names), "held_out_clean_flagged": int(sum(
        scored[n]["flagged"] for n in outside)), "n_held_out_clean": len(outside),
        "backdoored_flagged": {}}
    for family in FAMILIES:
        names = [row["name"] for row in zoo.rows("backdoored") if row["family"] == family]
        flags = rule_scores(vectors, null_names, {n: vectors[n] for n in names})
        result["audit_null"]["backdoored_flagged"][family] = f"{sum(flags[n]['flagged'] for n in names)}/{len(names)}"
    result["cpu_seconds"] = round(time.process_time() - start, 1)
    payload["lofo_rule"] = result
    save(payload)


def stage_holdout(zoo: Zoo, payload: dict[str, Any]) -> None:
    """The audit's rule on models with held-out trigger patterns and positions
    (benchmarks/backdoor_holdout.py), against the zoo's clean shadows (cross-fitted)."""
    from backdoor_holdout import holdout_folder
    from mlsafety.models import load_classifier
    from mlsafety.monitoring.backdoor.model_level import model_level_statistics

    folder = holdout_folder(zoo.config)
    manifest = json.loads((folder / "manifest.json").read_text())
    reference = default_splits()["validation"]
    cache = payload.setdefault("holdout_raw", {})
    for name, row in sorted(manifest["models"].items()):
        if name not in cache:
            start = time.process_time()
            cleanse, uap, _ = model_level_statistics(load_classifier(folder / row["file"]), reference)
            cache[name] = {"l1_norms": cleanse.l1_norms_.tolist(), "log_probabilities": uap.log_probabilities_.tolist(),
                           "cpu_seconds": round(time.process_time() - start, 1)}
            save(payload)
    vectors = class_statistics(zoo, [row["name"] for row in zoo.rows("clean")])
    positives = {name: {"group": row["family"], "target": row["attack"]["target_class"],
                        "vectors": class_vectors(cache[name], cache[name])} for name, row in manifest["models"].items()}
    positives_all = {name: {**info, "group": "all held-out triggers"} for name, info in positives.items()}
    result = cross_fitted(zoo, vectors, positives)
    result["all"] = cross_fitted(zoo, vectors, positives_all)["all held-out triggers"]
    result["models"] = [{k: row[k] for k in ("name", "family", "clean_accuracy", "attack_success_rate",
                                              "training_cpu_seconds", "attack")}
                        for row in manifest["models"].values()]
    payload["holdout"] = result
    save(payload)


def stage_report(zoo: Zoo, payload: dict[str, Any]) -> None:
    """Print the markdown tables of docs/backdoor.md."""

    def cell(entry: dict[str, Any]) -> str:
        return (f"{entry['auroc']:.2f} [{entry['auroc_ci'][0]:.2f}, {entry['auroc_ci'][1]:.2f}] | "
                f"{entry['tpr_at_5fpr']:.2f} [{entry['tpr_ci'][0]:.2f}, {entry['tpr_ci'][1]:.2f}]")

    print("| detector | " + " | ".join(f"{f} AUROC | {f} TPR@5%FPR" for f in FAMILIES) + " | mean AUROC |")
    print("|---" * (2 + 2 * len(FAMILIES)) + "|")
    rows = [(name.upper() + " (leave-one-family-out, cross-fitted)", payload.get("lofo", {}).get(name))
            for name in ("mntd", "ulp")]
    rows += [(f"{key} (quick, no training)", payload.get("reverse_quick", {}).get(key))
             for key in ("neural_cleanse:norm_ratio", "neural_cleanse:anomaly_index", "tabor:norm_ratio",
                         "tabor:anomaly_index")]
    rows += [(f"{key} (full, no training)", payload.get("reverse_full", {}).get(key))
             for key in ("neural_cleanse:norm_ratio", "neural_cleanse:anomaly_index")]
    for label, table in rows:
        if table:
            print(f"| {label} | " + " | ".join(cell(table[f]) if f in table else "- | -" for f in FAMILIES)
                  + f" | {table['mean_auroc']:.2f} |")
    for family in FAMILIES:
        entry = payload.get("lofo", {}).get("mntd", {}).get(family)
        if entry:
            print(f"{family}: {entry['n_backdoored']} backdoored + {entry['n_clean']} clean test scores")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", default="lofo,reverse,calibration")
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds for the reverse_full stage")
    args = parser.parse_args()
    zoo = Zoo(ZooConfig())
    payload: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    payload.update({"zoo": zoo.config.identity, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs "
                    "(shared with other jobs), torch threads 1", "date": time.strftime("%Y-%m-%d", time.gmtime()),
                    "models": [{k: row[k] for k in ("name", "family", "clean_accuracy", "attack_success_rate",
                                                     "training_seconds", "attack")} for row in zoo.rows()]})
    save(payload)
    stages = {"lofo": stage_lofo, "reverse": stage_reverse, "calibration": stage_calibration,
              "lofo_rule": stage_lofo_rule, "holdout": stage_holdout,
              "rule": stage_rule, "reverse_full": lambda z, p: stage_reverse_full(z, p, args.budget),
              "report": stage_report}
    for stage in args.stages.split(","):
        stages[stage](zoo, payload)


if __name__ == "__main__":
    main()
