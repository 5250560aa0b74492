"""The backdoor zoo: small Fashion-MNIST models, clean and backdoored, trained on the CPU.

Stage ``train`` trains (or loads from the cache) every model of :data:`ZOO` and writes
C-Acc / ASR; stage ``evaluate`` runs the detectors and defences over the zoo and writes
``benchmarks/results/backdoor_zoo.json`` (rendered into docs/backdoor.md).

    python benchmarks/backdoor_zoo.py train
    python benchmarks/backdoor_zoo.py evaluate

Models are cached under ``~/.cache/mlsafety/backdoor_zoo`` (``$MLSAFETY_CACHE``).
Settings chosen to fit a shared 2-core CPU: 12,000 training images, width-16 SmallCNN,
3 epochs, one thread.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mlsafety.data import default_splits
from mlsafety.models import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    Classifier,
    accuracy,
    build_architecture,
    cache_dir,
    load_classifier,
    save_checkpoint,
    train_classifier,
)
from mlsafety.registry import BACKDOOR_ATTACKS

torch.set_num_threads(1)

N_TRAIN = 12_000
EPOCHS = 3
WIDTH = 16
RESULTS = Path(__file__).parent / "results"

# name -> (attack or None, attack kwargs, training seed)
ZOO: dict[str, tuple[str | None, dict[str, Any], int]] = {
    **{f"clean_{i}": (None, {}, i) for i in range(8)},
    "badnets_t0": ("badnets", {"target_class": 0, "poison_rate": 0.05}, 10),
    "badnets_t6": ("badnets", {"target_class": 6, "poison_rate": 0.05}, 11),
    "blended_t2": ("blended", {"target_class": 2, "poison_rate": 0.05, "alpha": 0.2}, 12),
    "blended_t7": ("blended", {"target_class": 7, "poison_rate": 0.05, "alpha": 0.2}, 13),
    "wanet_t3": ("wanet", {"target_class": 3, "poison_rate": 0.1, "strength": 1.0}, 14),
    "wanet_t9": ("wanet", {"target_class": 9, "poison_rate": 0.1, "strength": 1.0}, 15),
    "sig_t4": ("sig", {"target_class": 4, "poison_rate": 0.08}, 16),
    "sig_t8": ("sig", {"target_class": 8, "poison_rate": 0.08, "delta": 40 / 255}, 17),
    "badnets_all2all": ("badnets", {"mapping": "all_to_all", "poison_rate": 0.1}, 18),
}


def zoo_dir() -> Path:
    return cache_dir() / "backdoor_zoo"


def train_split() -> Any:
    return default_splits()["train"].head(N_TRAIN, seed=0)


def make_attack(name: str) -> Any:
    attack_name, kwargs, _ = ZOO[name]
    return None if attack_name is None else BACKDOOR_ATTACKS.create(attack_name, **kwargs)


def poisoned_training_set(name: str) -> tuple[Any, torch.Tensor]:
    """The (possibly poisoned) training set of model ``name`` and its poisoned indices."""
    attack = make_attack(name)
    train = train_split()
    if attack is None:
        return train, torch.zeros(0, dtype=torch.long)
    return attack.poison_dataset(train)


def load_model(name: str) -> Classifier:
    return load_classifier(zoo_dir() / f"{name}.safetensors")


def train_model(name: str) -> dict[str, Any]:
    from mlsafety.monitoring.backdoor import backdoor_metrics

    path = zoo_dir() / f"{name}.safetensors"
    attack = make_attack(name)
    seed = ZOO[name][2]
    test = default_splits()["test"]
    if path.exists():
        classifier = load_classifier(path)
        seconds = float(classifier.metadata.get("training_seconds", float("nan")))
    else:
        data, _ = poisoned_training_set(name)
        torch.manual_seed(seed)
        kwargs = {"in_channels": 1, "n_classes": 10, "width": WIDTH}
        module = build_architecture("small_cnn", **kwargs).eval()
        classifier = Classifier(module, mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD,
                                class_names=data.class_names, input_shape=(1, 28, 28), name=f"zoo:{name}")
        history = train_classifier(classifier, data, epochs=EPOCHS, batch_size=128, learning_rate=5e-3,
                                   seed=seed, progress=False)
        seconds = history.seconds
        save_checkpoint(classifier, path, "small_cnn", kwargs,
                        {"zoo": name, "attack": ZOO[name][0], "attack_kwargs": ZOO[name][1],
                         "seed": seed, "training_seconds": round(seconds, 1)})
    if attack is None:
        row = {"clean_accuracy": accuracy(classifier, test), "attack_success_rate": None}
    else:
        row = backdoor_metrics(classifier, attack, test)
    row.update({"name": name, "attack": ZOO[name][0], "training_seconds": round(seconds, 1)})
    return row


def stage_train(names: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        start = time.perf_counter()
        row = train_model(name)
        rows.append(row)
        print(json.dumps(row), f"({time.perf_counter() - start:.0f} s)", flush=True)
    (RESULTS / "backdoor_zoo_models.json").write_text(json.dumps(rows, indent=2))


def detection_rates(clean_scores: torch.Tensor, poison_scores: torch.Tensor) -> dict[str, float]:
    """AUROC and TPR at 5% FPR of scores where higher = poisoned."""
    from sklearn.metrics import roc_auc_score

    clean_scores, poison_scores = clean_scores.double().cpu(), poison_scores.double().cpu()
    labels = torch.cat([torch.zeros(len(clean_scores)), torch.ones(len(poison_scores))])
    auroc = float(roc_auc_score(labels.numpy(), torch.cat([clean_scores, poison_scores]).numpy()))
    threshold = torch.quantile(clean_scores, 0.95)
    return {"auroc": auroc, "tpr_at_5_fpr": float((poison_scores > threshold).float().mean())}


def evaluate_model(name: str) -> dict[str, Any]:
    from mlsafety.monitoring.backdoor import (
        STRIP,
        ActivationClustering,
        FinePruning,
        NeuralCleanse,
        SpectralSignatures,
        TriggerUnlearning,
        backdoor_metrics,
    )

    splits = default_splits()
    validation = splits["validation"]
    test = splits["test"].head(2000, seed=1)
    classifier = load_model(name)
    attack = make_attack(name)
    row: dict[str, Any] = {"name": name, "attack": ZOO[name][0], "attack_kwargs": ZOO[name][1]}
    cleanse = NeuralCleanse(steps=NC_STEPS, n_samples=1000).fit(classifier, validation.head(2000, seed=2))
    row["neural_cleanse"] = cleanse.summary()
    if attack is None:
        return row
    row.update(backdoor_metrics(classifier, attack, test))
    poisoned, indices = poisoned_training_set(name)
    is_poisoned = torch.zeros(len(poisoned), dtype=torch.bool)
    is_poisoned[indices] = True
    start = time.perf_counter()
    features, _ = classifier.features(poisoned.images)
    row["feature_seconds"] = time.perf_counter() - start
    for key, detector in (("spectral_signatures", SpectralSignatures()), ("activation_clustering",
                                                                          ActivationClustering())):
        start = time.perf_counter()
        detector.fit_features(features, poisoned.labels, poisoned.n_classes)
        seconds = time.perf_counter() - start
        scores = detector.scores_.cpu()
        row[key] = {**detection_rates(scores[~is_poisoned], scores[is_poisoned]), "seconds": seconds,
                    "n_samples": len(poisoned)}
    strip = STRIP().fit(classifier, validation.head(1000, seed=3))
    clean_inputs = test.head(500, seed=4)
    triggered = attack(clean_inputs.images[attack.attack_mask(clean_inputs.labels)])
    start = time.perf_counter()
    clean_scores, trigger_scores = strip.score(clean_inputs.images), strip.score(triggered)
    row["strip"] = {**detection_rates(clean_scores, trigger_scores),
                    "seconds": time.perf_counter() - start, "n_samples": len(clean_inputs) + len(triggered)}
    repair_data = validation.head(2000, seed=5)
    pruned = FinePruning().apply(classifier, repair_data)
    row["fine_pruning"] = backdoor_metrics(pruned, attack, test)
    unlearned = TriggerUnlearning().apply_from(classifier, repair_data, cleanse)
    row["unlearning"] = backdoor_metrics(unlearned, attack, test)
    row["unlearning"]["trigger_class"] = cleanse.suspected_target_ if cleanse.suspected_target_ is not None \
        else int(cleanse.l1_norms_.argmin())
    return row


def stage_evaluate(names: list[str]) -> None:
    folder = RESULTS / "backdoor_zoo"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = folder / f"{name}.json"
        if path.exists():
            continue
        start = time.perf_counter()
        row = evaluate_model(name)
        row["seconds"] = time.perf_counter() - start
        path.write_text(json.dumps(row, indent=2))
        print(name, f"{row['seconds']:.0f} s", json.dumps(row.get("neural_cleanse", {}).get("is_backdoored")),
              flush=True)


def stage_rescore_ss() -> None:
    """Recompute the Spectral Signatures entries with the current defaults (cheap: one feature pass)."""
    from mlsafety.monitoring.backdoor import SpectralSignatures

    for path in sorted((RESULTS / "backdoor_zoo").glob("*.json")):
        row = json.loads(path.read_text())
        if row["attack"] is None or "normalized_by_class_median" in row["spectral_signatures"]:
            continue
        classifier = load_model(row["name"])
        poisoned, indices = poisoned_training_set(row["name"])
        is_poisoned = torch.zeros(len(poisoned), dtype=torch.bool)
        is_poisoned[indices] = True
        features, _ = classifier.features(poisoned.images)
        start = time.perf_counter()
        detector = SpectralSignatures().fit_features(features, poisoned.labels, poisoned.n_classes)
        seconds = time.perf_counter() - start
        scores = detector.scores_.cpu()
        old = row["spectral_signatures"]
        row["spectral_signatures"] = {**detection_rates(scores[~is_poisoned], scores[is_poisoned]),
                                      "seconds": seconds, "n_samples": len(poisoned),
                                      "normalized_by_class_median": {"auroc": old["auroc"],
                                                                     "tpr_at_5_fpr": old["tpr_at_5_fpr"]}}
        path.write_text(json.dumps(row, indent=2))
        print(row["name"], row["spectral_signatures"]["auroc"], flush=True)


def stage_report() -> None:
    """Print the markdown tables of docs/backdoor.md from the cached results."""
    folder = RESULTS / "backdoor_zoo"
    rows = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    models = {r["name"]: r for r in json.loads((RESULTS / "backdoor_zoo_models.json").read_text())}
    print("| model | attack (settings) | C-Acc | ASR | NC verdict (target) | NC anomaly index |")
    print("|---|---|---|---|---|---|")
    for name in ZOO:
        if name not in rows:
            continue
        r, m = rows[name], models.get(name, {})
        nc = r["neural_cleanse"]
        settings = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in ZOO[name][1].items())
        asr = m.get("attack_success_rate")
        verdict = f"backdoored ({nc['suspected_target']})" if nc["is_backdoored"] else "clean"
        print(f"| {name} | {ZOO[name][0] or '-'} ({settings}) | {m.get('clean_accuracy', float('nan')):.3f} | "
              f"{'-' if asr is None else f'{asr:.3f}'} | {verdict} | {nc['anomaly_index']:.2f} |")
    print()
    print("| model | SS AUROC | SS TPR@5%FPR | AC AUROC | AC TPR@5%FPR | STRIP AUROC | STRIP TPR@5%FPR |"
          " ASR after Fine-Pruning (C-Acc) | ASR after unlearning (C-Acc) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ZOO:
        r = rows.get(name)
        if r is None or r["attack"] is None:
            continue
        ss, ac, st = r["spectral_signatures"], r["activation_clustering"], r["strip"]
        fp, un = r["fine_pruning"], r["unlearning"]
        print(f"| {name} | {ss['auroc']:.3f} | {ss['tpr_at_5_fpr']:.3f} | {ac['auroc']:.3f} | "
              f"{ac['tpr_at_5_fpr']:.3f} | {st['auroc']:.3f} | {st['tpr_at_5_fpr']:.3f} | "
              f"{fp['attack_success_rate']:.3f} ({fp['clean_accuracy']:.3f}) | "
              f"{un['attack_success_rate']:.3f} ({un['clean_accuracy']:.3f}) |")
    clean = [r for r in rows.values() if r["attack"] is None]
    dirty = [r for r in rows.values() if r["attack"] is not None]
    correct = sum(not r["neural_cleanse"]["is_backdoored"] for r in clean) + sum(
        r["neural_cleanse"]["is_backdoored"] for r in dirty)
    right_target = sum(r["neural_cleanse"]["suspected_target"] == r["attack_kwargs"].get("target_class", -1)
                       and r["attack_kwargs"].get("mapping", "all_to_one") == "all_to_one" for r in dirty)
    print()
    print(f"Neural Cleanse model-level accuracy: {correct}/{len(rows)} "
          f"(clean models called clean: {sum(not r['neural_cleanse']['is_backdoored'] for r in clean)}/{len(clean)}; "
          f"backdoored called backdoored: {sum(r['neural_cleanse']['is_backdoored'] for r in dirty)}/{len(dirty)}; "
          f"right target: {right_target})")


NC_STEPS = 200


if __name__ == "__main__":
    stage = sys.argv[1] if len(sys.argv) > 1 else "train"
    names = sys.argv[2:] or list(ZOO)
    if stage == "train":
        stage_train(names)
    elif stage == "evaluate":
        stage_evaluate(names)
    elif stage == "rescore_ss":
        stage_rescore_ss()
    elif stage == "report":
        stage_report()
    else:
        raise SystemExit(f"unknown stage {stage!r}; use train or evaluate")
