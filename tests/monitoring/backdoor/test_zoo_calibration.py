"""Shadow-model zoo, calibrated p-values and the MNTD / ULP meta-detectors (mechanics)."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mlsafety.exceptions import InvalidInputError, InvalidParameterError, NotFittedError, ShapeError
from mlsafety.monitoring.backdoor._model_detector import BACKDOOR_MODEL_DETECTORS
from mlsafety.monitoring.backdoor.calibration import (
    calibrated_decision,
    empirical_p_value,
    leave_one_out_p_values,
)
from mlsafety.monitoring.backdoor.zoo import FAMILIES, ZooConfig, find_zoo, plan_model, update_json


def test_empirical_p_value_hand_computed() -> None:
    null = [0.5, 1.0, 1.5, 2.0]
    assert empirical_p_value(1.2, null) == pytest.approx((1 + 2) / 5)
    assert empirical_p_value(9.0, null) == pytest.approx(1 / 5)
    assert empirical_p_value(0.0, null) == pytest.approx(1.0)
    with pytest.raises(InvalidInputError):
        empirical_p_value(1.0, [])


def test_p_values_are_uniform_on_clean_shadows_and_flag_a_planted_outlier() -> None:
    null = np.random.default_rng(0).normal(size=99)
    loo = leave_one_out_p_values(null)
    # exchangeable clean models: the leave-one-out p-values are the ranks / n, i.e. uniform
    assert sorted(np.round(loo * 99).astype(int).tolist()) == list(range(1, 100))
    decision = calibrated_decision({"index": 0.0}, {"index": null}, alpha=0.05, zoo="synthetic")
    assert not decision.is_backdoored and decision.measured_fpr <= 0.05 + 1e-9
    planted = calibrated_decision({"index": 10.0}, {"index": null}, alpha=0.05, zoo="synthetic")
    assert planted.is_backdoored and planted.p_values["index"] == pytest.approx(1 / 100)
    # two statistics: the minimum p-value is recalibrated, so the measured FPR stays at the level
    other = np.random.default_rng(1).normal(size=99)
    both = calibrated_decision({"a": 0.0, "b": 10.0}, {"a": null, "b": other}, alpha=0.05)
    assert both.is_backdoored and 0.02 <= both.measured_fpr <= 0.07
    few = calibrated_decision({"index": 10.0}, {"index": null[:9]}, alpha=0.05)
    assert not few.is_backdoored and "only 9 clean shadows" in few.notes[0]


def test_zoo_plan_is_deterministic_and_covers_families() -> None:
    config = ZooConfig(data="digits", width=8)
    plans = [plan_model(config, "backdoored", i, 16, 10) for i in range(8)]
    assert [p["family"] for p in plans[:4]] == list(FAMILIES)
    assert plans == [plan_model(config, "backdoored", i, 16, 10) for i in range(8)]
    assert len({p["attack"]["target_class"] for p in plans}) > 1
    assert plans[3]["family"] == "sig"  # clean-label family included
    with pytest.raises(InvalidParameterError, match="`data` of ZooConfig"):
        ZooConfig(data="cifar").validate()


def test_zoo_build_manifest_and_resume(tiny_zoo) -> None:
    manifest = json.loads(tiny_zoo.manifest_path.read_text())
    assert manifest["identity"] == tiny_zoo.config.identity and len(manifest["models"]) == 10
    clean = tiny_zoo.rows("clean")
    assert len(clean) == 6 and all(row["clean_accuracy"] > 0.5 for row in clean)
    backdoored = tiny_zoo.rows("backdoored")
    assert {row["family"] for row in backdoored} == set(FAMILIES)
    assert all(0 <= row["attack_success_rate"] <= 1 for row in backdoored)
    # a second build trains nothing; an interrupted model (row lost, temp file left) is retrained
    trained: list[str] = []
    tiny_zoo.build(6, 4, progress=lambda row: trained.append(row["name"]))
    assert trained == []
    manifest["models"].pop("clean_003")
    tiny_zoo.manifest_path.write_text(json.dumps(manifest))
    stale, live = tiny_zoo.folder / ".manifest.json.123.tmp", tiny_zoo.folder / ".statistics.json.456.tmp"
    stale.write_text("partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    live.write_text("another writer's, being written")
    tiny_zoo.build(6, 4, progress=lambda row: trained.append(row["name"]))
    # the killed writer's temporary is removed; a live writer's (seconds old) is left alone
    assert trained == ["clean_003"] and list(tiny_zoo.folder.glob(".*.tmp")) == [live]
    live.unlink()
    assert find_zoo("small_cnn", "digits", tiny_zoo.folder.parent).folder == tiny_zoo.folder
    assert find_zoo("small_cnn", "fashion-mnist", tiny_zoo.folder.parent) is None


@pytest.mark.parametrize("name", ["mntd", "ulp"])
def test_meta_detector_separates_its_shadows_and_leaves_them_unchanged(name, tiny_zoo, backdoored,
                                                                       tiny_classifier) -> None:
    pairs = tiny_zoo.load_models()
    models = [model for _, model in pairs]
    labels = [int(row["family"] is not None) for row, _ in pairs]
    state = {k: v.clone() for k, v in models[0].module.state_dict().items()}
    detector = BACKDOOR_MODEL_DETECTORS.create(name, epochs=20)
    with pytest.raises(NotFittedError):
        detector.score_model(models[0])
    assert detector.fit(models, labels) is detector
    scores = detector.score_models(models)
    assert scores.shape == (10,) and bool(torch.isfinite(scores).all())
    # the training shadows are separated (a chance detector has AUROC 0.5)
    assert roc_auc_score(labels, scores.numpy()) > 0.9
    for key, value in models[0].module.state_dict().items():
        assert torch.equal(value, state[key])
    assert float(detector.queries().min()) >= 0 and float(detector.queries().max()) <= 1
    assert np.isfinite(detector.score_model(backdoored[0]))
    with pytest.raises(InvalidInputError, match="clean \\(0\\) and backdoored"):
        BACKDOOR_MODEL_DETECTORS.create(name).fit(models, [0] * 10)
    wrong = type(tiny_classifier)(tiny_classifier.module, input_shape=(1, 8, 8))
    with pytest.raises(ShapeError):
        detector.score_model(wrong)


def test_zoo_statistics_are_cached(tiny_zoo) -> None:
    calls: list[int] = []

    def statistic(model) -> float:
        calls.append(1)
        return float(model.n_parameters())

    first = tiny_zoo.statistics("n_parameters", statistic, kind="clean")
    second = tiny_zoo.statistics("n_parameters", statistic, kind="clean")
    assert first == second and len(first) == 6 and len(calls) == 6
    subset = tiny_zoo.statistics("n_parameters", statistic, names={"clean_000", "backdoor_x"})
    assert list(subset) == ["clean_000"] and len(calls) == 6


def _add_entries(path: str, writer: int, n: int) -> None:
    for i in range(n):
        update_json(Path(path), lambda cache, i=i: cache.setdefault(f"key{writer % 2}", {}).__setitem__(
            f"w{writer}-{i}", i))


def test_concurrent_statistics_writers_lose_nothing(tmp_path) -> None:
    """Four processes each add 25 entries to one statistics file at the same time: every entry
    survives (an unlocked read-modify-write loses entries of the other writers)."""
    path = tmp_path / "statistics.json"
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_add_entries, args=(str(path), writer, 25)) for writer in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    cache = json.loads(path.read_text())
    assert sorted(cache) == ["key0", "key1"]
    assert sum(len(entries) for entries in cache.values()) == 100
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("name", ["mntd", "ulp"])
def test_meta_detector_save_and_load_round_trip(name, tiny_zoo, tmp_path) -> None:
    pairs = tiny_zoo.load_models()
    models = [model for _, model in pairs]
    detector = BACKDOOR_MODEL_DETECTORS.create(name, epochs=2).fit(
        models, [int(row["family"] is not None) for row, _ in pairs])
    detector.save(tmp_path / "detector.safetensors")
    loaded = type(detector).load(tmp_path / "detector.safetensors")
    assert type(loaded) is type(detector) and loaded.get_params() == detector.get_params()
    assert torch.equal(loaded.score_models(models), detector.score_models(models))
    (tmp_path / "other.safetensors").write_bytes((tmp_path / "detector.safetensors").read_bytes().replace(
        name.encode(), b"xxxx" if name == "mntd" else b"xxx", 1))
    with pytest.raises(InvalidInputError, match="not a saved model-level backdoor detector"):
        type(detector).load(tmp_path / "other.safetensors")


def test_split_clean_rows_keeps_enough_calibration_shadows() -> None:
    from mlsafety.monitoring.backdoor.model_level import MIN_CALIBRATION_SHADOWS, split_clean_rows

    rows = [{"name": f"clean_{i:03d}"} for i in range(38)]
    meta, calibration = split_clean_rows(rows[::-1])
    assert [r["name"] for r in meta] == [f"clean_{i:03d}" for i in range(12)] and len(calibration) == 26
    few = rows[:MIN_CALIBRATION_SHADOWS + 1]
    assert split_clean_rows(few) == ([], few)


@pytest.mark.slow  # 7 Neural Cleanse runs of 150 steps (~12 CPU s); the audit's per-class statistic is
# checked on the same planted trigger in test_backdoor_check_is_calibrated_against_a_zoo
def test_planted_trigger_gets_the_smallest_p_value_against_clean_shadows(tiny_zoo, backdoored, digits_splits) -> None:
    """A strong white-patch backdoor has a more extreme Neural Cleanse norm ratio than every clean
    shadow, so its p-value is the smallest possible, 1 / (n + 1); the clean shadows' own
    leave-one-out p-values are their ranks (uniform)."""
    from mlsafety.monitoring.backdoor import NeuralCleanse

    settings = {"steps": 150, "batch_size": 8, "n_samples": 200}
    reference = digits_splits["validation"]
    null = tiny_zoo.statistics("nc-test", lambda m: NeuralCleanse(seed=0, **settings).fit(m, reference).norm_ratio_,
                               kind="clean")
    values = np.array(list(null.values()))
    assert sorted(np.round(leave_one_out_p_values(values) * 6).astype(int).tolist()) == list(range(1, 7))
    planted = NeuralCleanse(seed=0, **settings).fit(backdoored[0], reference)
    assert planted.norm_ratio_ > 1.5 * values.max()
    assert empirical_p_value(planted.norm_ratio_, values) == pytest.approx(1 / 7)


def test_combined_rule_keeps_its_level_with_several_statistics() -> None:
    """A clean model exchangeable with 26 shadows, 3 independent statistics: the combined rule
    flags about 1/27 of them (a minimum of p-values taken against different numbers of models
    flagged every model that was the largest on any statistic, about 3/27)."""
    rng = np.random.default_rng(0)
    flagged, fprs = [], []
    for _ in range(600):
        values = rng.normal(size=(3, 27))
        null = {name: values[k, :26] for k, name in enumerate("abc")}
        decision = calibrated_decision({name: values[k, 26] for k, name in enumerate("abc")}, null, alpha=0.05)
        flagged.append(decision.is_backdoored)
        fprs.append(decision.measured_fpr)
    assert np.mean(flagged) <= 0.065
    assert np.mean(fprs) <= 0.05
