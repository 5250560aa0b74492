"""Common tests run over every registry (STYLE.md): construction, contracts, determinism."""

from __future__ import annotations

import copy

import pytest
import torch

from mlsafety.audit.base import Check
from mlsafety.base import Detector, Perturbation
from mlsafety.exceptions import NotFittedError, UnknownMethodError
from mlsafety.registry import (
    ARCHITECTURES,
    ATTACKS,
    BACKDOOR_ATTACKS,
    BACKDOOR_DETECTORS,
    CALIBRATORS,
    CHECKS,
    CORRUPTIONS,
    ENVIRONMENTS,
    OOD_DETECTORS,
    Registry,
    all_registries,
)

PERTURBATIONS = [(r, n) for r in (CORRUPTIONS, ATTACKS, BACKDOOR_ATTACKS) for n in r.names()]
DETECTORS = [(r, n) for r in (OOD_DETECTORS, BACKDOOR_DETECTORS) for n in r.names()]
EVERYTHING = [(r, n) for r in all_registries().values() for n in r.names()]


def _id(pair: tuple[Registry, str]) -> str:
    return f"{pair[0].kind}:{pair[1]}"


# Iterative methods keep their defaults but run few iterations here (as timm's tests use tiny variants);
# their strength is tested against references in their own test files.
_FEW_ITERATIONS = {"n_steps": 3, "n_queries": 20, "n_restarts": 1, "binary_search_steps": 1, "n_target_classes": 2}


def _fast(instance):
    for attribute, cap in _FEW_ITERATIONS.items():
        value = getattr(instance, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            setattr(instance, attribute, cap)
    return instance


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownMethodError, match="Did you mean 'small_cnn'"):
        ARCHITECTURES.get("smal_cnn")


@pytest.mark.parametrize("pair", EVERYTHING, ids=_id)
def test_default_construction_and_params(pair: tuple[Registry, str]) -> None:
    registry, name = pair
    if registry is ARCHITECTURES:
        instance = registry.create(name)
        assert isinstance(instance, torch.nn.Module)
        return
    instance = registry.create(name)
    if hasattr(instance, "get_params"):
        params = instance.get_params()
        rebuilt = type(instance)(**params)
        assert rebuilt.get_params().keys() == params.keys()
        assert type(instance).__name__ in repr(instance)


@pytest.mark.parametrize("name", CHECKS.names())
def test_checks_are_well_formed(name: str) -> None:
    check = CHECKS.create(name)
    assert isinstance(check, Check)
    assert check.name == name
    assert check.title and check.hazard


@pytest.mark.parametrize("pair", PERTURBATIONS, ids=_id)
def test_perturbation_contract(pair: tuple[Registry, str], tiny_classifier, digits_splits) -> None:
    registry, name = pair
    perturbation = _fast(registry.create(name))
    assert isinstance(perturbation, Perturbation)
    data = digits_splits["test"]
    x, y = data.images[:8].clone(), data.labels[:8]
    x_before = x.clone()
    module = tiny_classifier.module
    state, mode = _state(module), module.training
    first = perturbation(x, y, tiny_classifier)
    second = _fast(registry.create(name))(x, y, tiny_classifier)
    assert torch.equal(x, x_before), "the input must not be modified in place"
    assert first.shape == x.shape and first.dtype == x.dtype and first.device == x.device
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert torch.allclose(first, second, atol=1e-6), "same seed must give the same result"
    assert module.training == mode
    for key, value in _state(module).items():
        assert torch.equal(value, state[key]), f"{name} changed the model parameter {key}"


@pytest.mark.parametrize("pair", DETECTORS, ids=_id)
def test_detector_contract(pair: tuple[Registry, str], tiny_classifier, digits_splits) -> None:
    registry, name = pair
    detector = _fast(registry.create(name))
    assert isinstance(detector, Detector)
    x = digits_splits["test"].images[:16]
    with pytest.raises(NotFittedError):
        detector.score(x)
    module = tiny_classifier.module
    state, mode = _state(module), module.training
    fitted = detector.fit(tiny_classifier, digits_splits["train"])
    assert fitted is detector
    scores = detector.score(x)
    assert scores.shape == (16,)
    assert bool(torch.isfinite(scores).all())
    assert module.training == mode
    for key, value in _state(module).items():
        assert torch.equal(value, state[key]), f"{name} changed the model parameter {key}"


@pytest.mark.parametrize("name", CALIBRATORS.names())
def test_calibrator_contract(name: str) -> None:
    generator = torch.Generator().manual_seed(0)
    n_classes = 2 if CALIBRATORS.metadata(name).get("binary") else 4
    logits = torch.randn(200, n_classes, generator=generator) * 3
    labels = torch.randint(0, n_classes, (200,), generator=generator)
    calibrator = CALIBRATORS.create(name)
    with pytest.raises(NotFittedError):
        calibrator.transform(logits)
    assert calibrator.fit(logits, labels) is calibrator
    probabilities = calibrator.transform(logits)
    assert probabilities.shape == (200, n_classes)
    assert torch.allclose(probabilities.sum(1), torch.ones(200, dtype=probabilities.dtype), atol=1e-4)
    unchanged = copy.deepcopy(logits)
    calibrator.transform(logits)
    assert torch.equal(logits, unchanged)


@pytest.mark.parametrize("name", ENVIRONMENTS.names())
def test_environment_contract(name: str) -> None:
    from gymnasium.utils.env_checker import check_env

    environment = ENVIRONMENTS.create(name)
    check_env(environment, skip_render_check=True)
