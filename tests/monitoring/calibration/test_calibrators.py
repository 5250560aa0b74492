"""Recalibrators: reference checks (known temperature, scipy/sklearn optimum), quality floor, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from calibration_synthetic import synthetic
from scipy.optimize import minimize, minimize_scalar

from mlsafety.exceptions import InvalidInputError, NotFittedError, ShapeError
from mlsafety.metrics.calibration import expected_calibration_error, negative_log_likelihood
from mlsafety.monitoring.calibration import (
    HistogramBinning,
    IsotonicRegression,
    MatrixScaling,
    PlattScaling,
    TemperatureScaling,
    VectorScaling,
)
from mlsafety.registry import CALIBRATORS


def _nll(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    return negative_log_likelihood(probabilities, labels, from_logits=False)


def test_temperature_recovers_the_known_temperature() -> None:
    logits, labels = synthetic(20000, 5, seed=2, sharpen=2.5)
    scaler = TemperatureScaling().fit(logits, labels)
    assert scaler.temperature_ == pytest.approx(2.5, rel=0.05)


def test_temperature_matches_a_scalar_search_and_keeps_accuracy(overconfident) -> None:
    logits, labels = overconfident["validation"]
    scaler = TemperatureScaling().fit(logits, labels)
    reference = minimize_scalar(
        lambda t: float(torch.nn.functional.cross_entropy(logits / t, labels)), bounds=(0.05, 20), method="bounded",
        options={"xatol": 1e-8})
    assert scaler.temperature_ == pytest.approx(reference.x, rel=1e-4)
    assert scaler.nll_ == pytest.approx(reference.fun, abs=1e-8)
    test_logits, _ = overconfident["test"]
    assert torch.equal(scaler.transform(test_logits).argmax(1), test_logits.argmax(1))
    assert torch.allclose(scaler.calibrated_logits(test_logits), test_logits / scaler.temperature_)


def test_richer_scaling_families_fit_at_least_as_well(overconfident) -> None:
    # temperature scaling lies inside vector and matrix scaling: their penalised optimum is no worse
    logits, labels = overconfident["validation"]
    temperature = _nll(TemperatureScaling().fit_transform(logits, labels), labels)
    vector = _nll(VectorScaling().fit_transform(logits, labels), labels)
    matrix = _nll(MatrixScaling().fit_transform(logits, labels), labels)
    assert vector <= temperature + 1e-6
    assert matrix <= temperature + 1e-6


def test_matrix_scaling_penalty_shrinks_off_diagonal() -> None:
    logits, labels = synthetic(300, 6, seed=4)
    loose = MatrixScaling(off_diagonal_penalty=0.0, bias_penalty=0.0).fit(logits, labels)
    tight = MatrixScaling(off_diagonal_penalty=10.0, bias_penalty=10.0).fit(logits, labels)
    off = 1 - torch.eye(6, dtype=torch.float64)
    assert (tight.weight_ * off).abs().sum() < 0.5 * (loose.weight_ * off).abs().sum()


def _model_like_logits(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Strongly correlated logits, as a network's are: K classes driven by 4 latent features."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    logits = features @ (3 * torch.randn(4, k, generator=generator, dtype=torch.float64))
    logits = logits + 0.3 * torch.randn(n, k, generator=generator, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(logits / 2, 1), 1, generator=generator).squeeze(1)
    return logits, labels


def _matrix_objective(weight: torch.Tensor, bias: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                      off_diagonal_penalty: float = 1e-2, bias_penalty: float = 1e-2) -> torch.Tensor:
    # the objective as the docstring states it (Kull et al., 2019, ODIR), written independently
    k = logits.shape[1]
    off = 1 - torch.eye(k, dtype=torch.float64)
    return (torch.nn.functional.cross_entropy(logits @ weight.T + bias, labels)
            + off_diagonal_penalty * (weight * off).square().sum() / (k * (k - 1))
            + bias_penalty * bias.square().sum() / k)


def test_matrix_scaling_reaches_the_minimum_of_its_objective() -> None:
    logits, labels = _model_like_logits(2000, 10, seed=0)
    scaler = MatrixScaling().fit(logits, labels)
    assert scaler.converged_ and scaler.n_iter_ < 50
    weight = scaler.weight_.clone().requires_grad_(True)
    bias = scaler.bias_.clone().requires_grad_(True)
    gradient = torch.autograd.grad(_matrix_objective(weight, bias, logits, labels), [weight, bias])
    assert max(float(g.abs().max()) for g in gradient) < 1e-8
    # no lower point found by scipy's BFGS from the identity map
    k = logits.shape[1]

    def value_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        flat = torch.tensor(theta, requires_grad=True)
        value = _matrix_objective(flat[:k * k].view(k, k), flat[k * k:], logits, labels)
        (grad,) = torch.autograd.grad(value, flat)
        return float(value.detach()), grad.numpy()

    start = np.concatenate([np.eye(k).ravel(), np.zeros(k)])
    reference = minimize(value_and_gradient, start, jac=True, method="BFGS", options={"gtol": 1e-9, "maxiter": 5000})
    ours = float(_matrix_objective(scaler.weight_, scaler.bias_, logits, labels))
    assert ours <= reference.fun + 1e-10


def test_matrix_scaling_does_not_move_with_tiny_logit_changes() -> None:
    # a fit stopped before convergence moves with the last bits of the logits (an L-BFGS fit capped
    # at 150 iterations changed these probabilities by 2.5e-3 to 5e-3)
    for seed in (0, 1):
        logits, labels = _model_like_logits(2000, 10, seed=seed)
        noise = 1e-6 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
        first = MatrixScaling().fit(logits, labels).transform(logits)
        second = MatrixScaling().fit(logits + noise, labels).transform(logits)
        assert float((first - second).abs().max()) < 1e-4


def test_matrix_scaling_with_many_classes_uses_lbfgs(monkeypatch) -> None:
    from mlsafety.monitoring.calibration import matrix_scaling

    def no_newton(*args, **kwargs):
        raise AssertionError("Newton's method must not form the Hessian of 650 parameters")

    monkeypatch.setattr(matrix_scaling, "_newton", no_newton)
    logits, labels = synthetic(600, 25, seed=6)
    scaler = MatrixScaling(max_iter=40).fit(logits, labels)
    assert scaler.n_iter_ <= 40 and scaler.converged_ in (True, False)
    temperature = _nll(TemperatureScaling().fit_transform(logits, labels), labels)
    assert _nll(scaler.transform(logits), labels) <= temperature + 1e-6


def test_histogram_binning_bins_hold_label_frequencies() -> None:
    logits, labels = synthetic(500, 3, seed=5)
    binning = HistogramBinning(n_bins=4).fit(logits, labels)
    probabilities = torch.softmax(logits, 1)
    for k in range(3):
        for m in range(4):
            p = probabilities[:, k]
            inside = (p > m / 4) & (p <= (m + 1) / 4) if m else (p <= 0.25)
            expected = float((labels[inside] == k).double().mean()) if inside.any() else (m + 0.5) / 4
            assert float(binning.bin_values_[k, m]) == pytest.approx(expected, abs=1e-12)


def test_isotonic_map_is_monotone_per_class(overconfident) -> None:
    logits, labels = overconfident["validation"]
    isotonic = IsotonicRegression().fit(logits, labels)
    for x, y in isotonic.thresholds_:
        assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= -1e-12)


def _platt_reference(margin: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    n_pos, n_neg = positive.sum(), (~positive).sum()
    target = np.where(positive, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(params: np.ndarray) -> float:
        f = params[0] * margin + params[1]
        return float(np.mean(np.logaddexp(0, f) - target * f))

    return tuple(minimize(loss, x0=[1.0, 0.0], method="BFGS", options={"gtol": 1e-10}).x)


def test_platt_matches_a_direct_optimisation_of_its_objective() -> None:
    logits, labels = synthetic(2000, 2, seed=6)
    platt = PlattScaling().fit(logits, labels)
    margin = (logits[:, 1] - logits[:, 0]).numpy()
    slope, intercept = _platt_reference(margin, labels.numpy() == 1)
    assert float(platt.slope_[1]) == pytest.approx(slope, abs=1e-4)
    assert float(platt.intercept_[1]) == pytest.approx(intercept, abs=1e-4)
    expected = torch.sigmoid(torch.from_numpy(slope * margin + intercept))
    assert torch.allclose(platt.transform(logits)[:, 1], expected, atol=1e-4)


def test_platt_agrees_with_scikit_learn() -> None:
    calibration = pytest.importorskip("sklearn.calibration")
    if not hasattr(calibration, "_sigmoid_calibration"):
        pytest.skip("scikit-learn no longer exposes _sigmoid_calibration")
    logits, labels = synthetic(2000, 2, seed=7)
    margin = (logits[:, 1] - logits[:, 0]).numpy()
    a, b = calibration._sigmoid_calibration(margin, labels.numpy())  # P = 1 / (1 + exp(a f + b))
    platt = PlattScaling().fit(logits, labels)
    assert float(platt.slope_[1]) == pytest.approx(-a, abs=1e-3)
    assert float(platt.intercept_[1]) == pytest.approx(-b, abs=1e-3)


@pytest.mark.parametrize("name", [n for n in CALIBRATORS.names()])
def test_every_calibrator_reduces_ece_on_held_out_data(name: str, overconfident) -> None:
    logits, labels = overconfident["validation"]
    test_logits, test_labels = overconfident["test"]
    before = expected_calibration_error(test_logits, test_labels)
    calibrated = CALIBRATORS.create(name).fit(logits, labels).transform(test_logits)
    assert calibrated.shape == test_logits.shape
    assert torch.allclose(calibrated.sum(1), torch.ones(len(calibrated), dtype=calibrated.dtype))
    after = expected_calibration_error(calibrated, test_labels, from_logits=False)
    assert before > 0.1
    assert after < 0.5 * before


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CALIBRATORS.names())
def test_bad_input_is_refused(name: str) -> None:
    logits, labels = synthetic(50, 3, seed=8)
    calibrator = CALIBRATORS.create(name)
    with pytest.raises(NotFittedError):
        calibrator.transform(logits)
    bad_cases = [
        (torch.where(logits > 2, float("nan"), logits), labels, InvalidInputError, "NaN"),
        (torch.softmax(logits, 1), labels, InvalidInputError, "looks like probabilities"),
        (logits, torch.full_like(labels, 3), InvalidInputError, "label 3"),
        (logits, torch.zeros_like(labels), InvalidInputError, "single class"),
        (logits[:0], labels[:0], ShapeError, "empty"),
        (logits[:, :1], labels * 0, ShapeError, "at least 2 columns"),
    ]
    for bad_logits, bad_labels, error, message in bad_cases:
        with pytest.raises(error, match=message) as info:
            calibrator.fit(bad_logits, bad_labels)
        assert "\n" not in str(info.value)
    calibrator.fit(logits, labels)
    with pytest.raises(ShapeError, match="fitted on 3 classes"):
        calibrator.transform(torch.randn(4, 5))


def test_bad_parameters_are_refused() -> None:
    from mlsafety.exceptions import InvalidParameterError

    logits, labels = synthetic(50, 3, seed=9)
    with pytest.raises(InvalidParameterError, match="initial_temperature"):
        TemperatureScaling(initial_temperature=0).fit(logits, labels)
    with pytest.raises(InvalidParameterError, match="n_bins"):
        HistogramBinning(n_bins=0).fit(logits, labels)
    with pytest.raises(InvalidParameterError, match="off_diagonal_penalty"):
        MatrixScaling(off_diagonal_penalty=-1).fit(logits, labels)


def test_matrix_scaling_hessian_matches_autograd(monkeypatch) -> None:
    from mlsafety.monitoring.calibration import matrix_scaling

    monkeypatch.setattr(matrix_scaling, "HESSIAN_ROWS", 7)  # several row blocks
    logits, labels = _model_like_logits(30, 4, seed=3)
    x = torch.cat([logits, torch.ones(30, 1, dtype=torch.float64)], 1)
    theta = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    penalty = torch.rand(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = torch.autograd.functional.hessian(
        lambda t: matrix_scaling._objective(x, labels, t.view(4, 5), penalty), theta.flatten())
    assert torch.allclose(matrix_scaling._hessian(x, theta, penalty), expected, atol=1e-12)
    targets = torch.nn.functional.one_hot(labels, 4).double()
    point = theta.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(matrix_scaling._objective(x, labels, point, penalty), point)
    assert torch.allclose(matrix_scaling._gradient(x, targets, theta, penalty), gradient, atol=1e-12)
