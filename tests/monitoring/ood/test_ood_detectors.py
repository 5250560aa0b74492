"""Every registered OOD detector: API contract, quality floor, references, bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors

from mlsafety.exceptions import InvalidInputError, InvalidParameterError, NotFittedError, ShapeError
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
    OODDetector,
    PyODAdapter,
    ReAct,
    RelativeMahalanobis,
    ViM,
)
from mlsafety.monitoring.ood.ash import ash_shape
from mlsafety.registry import OOD_DETECTORS

NAMES = OOD_DETECTORS.names()
EXPECTED = {"msp", "max_logit", "energy", "entropy", "gen", "odin", "mahalanobis", "relative_mahalanobis", "knn",
            "vim", "react", "ash", "gradnorm", "kl_matching", "pyod"}
# Measured with the default model (500 Fashion-MNIST test images vs 300 OOD images); the
# floors sit below the measured AUROC and well above chance. PyOD's isolation forest does
# not separate digits (AUROC about 0.4), so its floor uses the photographs.
FLOOR_SET = {"pyod": "photos"}
FLOOR = 0.75


def test_registry_holds_every_detector() -> None:
    assert set(NAMES) >= EXPECTED


@pytest.mark.parametrize("name", NAMES)
def test_contract_on_cached_features(name, cached, default_classifier) -> None:
    detector = OOD_DETECTORS.create(name)
    assert isinstance(detector, OODDetector)
    for key, value in detector.get_params().items():
        assert getattr(detector, key) is value
    test = cached["test"]
    with pytest.raises(NotFittedError):
        detector.score_features(test.features, test.logits)
    with pytest.raises(NotFittedError):
        detector.score(torch.rand(2, 1, 28, 28))
    fit = cached["fit"]
    assert detector.fit_features(fit.features, fit.logits, fit.labels, head=default_classifier.head) is detector
    if detector.needs_inputs:
        with pytest.raises(InvalidInputError, match="cannot score cached features"):
            detector.score_features(test.features, test.logits)
        return
    features_before, logits_before = test.features.clone(), test.logits.clone()
    scores = detector.score_features(test.features, test.logits)
    assert scores.shape == (len(test.logits),)
    assert bool(torch.isfinite(scores).all())
    assert torch.equal(test.features, features_before) and torch.equal(test.logits, logits_before)
    ood = cached[FLOOR_SET.get(name, "digits")]
    value = auroc(scores, detector.score_features(ood.features, ood.logits))
    assert value >= FLOOR, f"{name}: AUROC {value:.3f} below the floor {FLOOR}"


@pytest.mark.parametrize("name", [n for n in NAMES if not OOD_DETECTORS.get(n).needs_inputs])
def test_score_equals_score_features(name, cached, default_classifier, fashion_small) -> None:
    """fit(classifier, data) / score(x) give what the shared-forward-pass API gives."""
    detector = OOD_DETECTORS.create(name).fit(default_classifier, fashion_small["validation"])
    reference = OOD_DETECTORS.create(name)
    fit = cached["fit"]
    reference.fit_features(fit.features, fit.logits, fit.labels, head=default_classifier.head)
    x = fashion_small["test"].images[:32]
    assert torch.allclose(detector.score(x), reference.score_features(cached["test"].features[:32],
                                                                      cached["test"].logits[:32]), atol=1e-4)


def test_odin_scores_inputs_without_touching_the_model(default_classifier, fashion_small, ood_sets) -> None:
    module = default_classifier.module
    module.train()
    state = copy.deepcopy(module.state_dict())
    try:
        detector = ODIN().fit(default_classifier, fashion_small["validation"])
        scores_in = detector.score(fashion_small["test"].images[:200])
        scores_out = detector.score(ood_sets["digits"].images[:200])
        assert module.training, "ODIN must restore the train/eval mode"
    finally:
        module.eval()
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key])
    assert all(p.grad is None for p in module.parameters())
    assert auroc(scores_in, scores_out) >= FLOOR


def test_odin_noise_raises_the_max_softmax_of_the_inputs(default_classifier, fashion_small) -> None:
    """Published property: the perturbation step increases the top softmax score."""
    x = fashion_small["test"].images[:64]
    plain = ODIN(temperature=1000.0, noise=0.0).fit(default_classifier, fashion_small["validation"])
    perturbed = ODIN(temperature=1000.0, noise=0.002).fit(default_classifier, fashion_small["validation"])
    assert float((perturbed.score(x) < plain.score(x)).float().mean()) > 0.9


# -- hand-computed and library references ------------------------------------------------------
LOGITS = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [5.0, -1.0, 1.0]])


def test_logit_scores_match_hand_computation() -> None:
    p = LOGITS.softmax(1)
    fit = Energy().fit_features(None, LOGITS)
    assert torch.allclose(fit.score_features(None, LOGITS), -torch.logsumexp(LOGITS, 1))
    assert torch.allclose(MSP().fit_features(None, LOGITS).score_features(None, LOGITS), -p.max(1).values)
    assert torch.allclose(MaxLogit().fit_features(None, LOGITS).score_features(None, LOGITS),
                          torch.tensor([-2.0, 0.0, -5.0]))
    entropy = Entropy().fit_features(None, LOGITS).score_features(None, LOGITS)
    assert torch.allclose(entropy[1], torch.log(torch.tensor(3.0)))
    gen = GEN(gamma=0.5).fit_features(None, LOGITS).score_features(None, LOGITS)
    assert torch.allclose(gen, (p.sqrt() * (1 - p).sqrt()).sum(1))
    assert torch.allclose(Energy(temperature=2.0).fit_features(None, LOGITS).score_features(None, LOGITS),
                          -2.0 * torch.logsumexp(LOGITS / 2.0, 1))


def test_gradnorm_closed_form_equals_per_sample_autograd() -> None:
    generator = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(6, 4)
    features = torch.randn(5, 6, generator=generator).relu()
    logits = head(features).detach()
    for temperature in (1.0, 3.0):
        expected = []
        for f in features:
            loss = -(head(f[None]) / temperature).log_softmax(1).mean()
            (gradient,) = torch.autograd.grad(loss, head.weight)
            expected.append(-gradient.abs().sum())
        scores = GradNorm(temperature=temperature).fit_features(features, logits).score_features(features, logits)
        assert torch.allclose(scores, torch.stack(expected), atol=1e-5)


def test_mahalanobis_matches_scipy(cached) -> None:
    from scipy.spatial.distance import mahalanobis

    fit, test = cached["fit"], cached["test"]
    f, y = fit.features.double().numpy(), fit.labels.numpy()
    means = np.stack([f[y == k].mean(0) for k in range(10)])
    centred = f - means[y]
    precision = np.linalg.pinv(centred.T @ centred / len(f), hermitian=True)
    queries = test.features[:10].double().numpy()
    expected = [min(mahalanobis(q, m, precision) ** 2 for m in means) for q in queries]
    scores = Mahalanobis().fit_features(fit.features, fit.logits, fit.labels).score_features(
        test.features[:10], test.logits[:10])
    assert np.allclose(scores.numpy(), expected, rtol=1e-3)
    background = np.linalg.pinv(np.cov(f.T, bias=True), hermitian=True)
    relative = [min(mahalanobis(q, m, precision) ** 2 - mahalanobis(q, f.mean(0), background) ** 2 for m in means)
                for q in queries]
    scores = RelativeMahalanobis().fit_features(fit.features, fit.logits, fit.labels).score_features(
        test.features[:10], test.logits[:10])
    assert np.allclose(scores.numpy(), relative, rtol=1e-3, atol=1e-2)


def test_knn_matches_sklearn(cached) -> None:
    fit, test = cached["fit"], cached["test"]
    bank = F.normalize(fit.features, dim=1).numpy()
    queries = F.normalize(test.features, dim=1).numpy()
    distances, _ = NearestNeighbors(n_neighbors=7).fit(bank).kneighbors(queries)
    scores = KNN(k=7).fit_features(fit.features, fit.logits).score_features(test.features, test.logits)
    assert np.allclose(scores.numpy(), distances[:, -1], atol=1e-4)


def test_vim_residual_is_orthogonal_to_the_principal_subspace(cached, default_classifier) -> None:
    fit = cached["fit"]
    detector = ViM(n_components=32).fit_features(fit.features, fit.logits, head=default_classifier.head)
    assert detector.residual_basis_.shape == (128, 96)
    gram = detector.residual_basis_.T @ detector.residual_basis_
    assert torch.allclose(gram, torch.eye(96, dtype=gram.dtype), atol=1e-8)
    weight, bias = default_classifier.head.weight.double(), default_classifier.head.bias.double()
    assert torch.allclose(weight @ detector.origin_ + bias, torch.zeros(10, dtype=torch.float64), atol=1e-4)


def test_react_clips_at_the_percentile_and_ash_prunes() -> None:
    head = torch.nn.Linear(4, 2)
    features = torch.tensor([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]])
    logits = head(features).detach()
    detector = ReAct(percentile=50).fit_features(features, logits, head=head)
    assert detector.threshold_clip_ == pytest.approx(3.5)
    clipped = features.clamp(max=3.5)
    expected = -torch.logsumexp(head(clipped), 1).detach()
    assert torch.allclose(detector.score_features(features, logits), expected, atol=1e-5)
    x = torch.tensor([[1.0, 4.0, 2.0, 3.0]])
    assert torch.equal(ash_shape(x, 50, "p"), torch.tensor([[0.0, 4.0, 0.0, 3.0]]))
    assert torch.equal(ash_shape(x, 50, "b"), torch.tensor([[0.0, 5.0, 0.0, 5.0]]))
    assert torch.allclose(ash_shape(x, 50, "s"), torch.tensor([[0.0, 4.0, 0.0, 3.0]]) * np.exp(10 / 7))
    ash = ASH(percentile=50, variant="p").fit_features(x, head(x).detach(), head=head)
    assert torch.allclose(ash.score_features(x, head(x).detach()),
                          -torch.logsumexp(head(ash_shape(x, 50, "p")), 1).detach(), atol=1e-5)


def test_kl_matching_is_zero_on_a_template() -> None:
    logits = torch.tensor([[3.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 4.0]])
    detector = KLMatching().fit_features(None, logits)
    assert detector.templates_.shape == (2, 3)  # class 1 is never predicted
    assert torch.allclose(detector.score_features(None, logits), torch.zeros(3), atol=1e-6)
    assert float(detector.score_features(None, torch.zeros(1, 3))) > 0.1


def test_pyod_adapter_runs_any_pyod_detector(cached) -> None:
    pytest.importorskip("pyod")
    from pyod.models.knn import KNN as PyODKNN

    fit, test, ood = cached["fit"], cached["test"], cached["photos"]
    estimator = PyODKNN(n_neighbors=5)
    detector = PyODAdapter(estimator).fit_features(fit.features, fit.logits)
    assert not hasattr(estimator, "decision_scores_"), "the given estimator must stay unfitted"
    expected = detector.estimator_.decision_function(test.features.double().numpy())
    assert np.allclose(detector.score_features(test.features, test.logits).numpy(), expected, rtol=1e-5)
    assert auroc(detector.score_features(test.features, test.logits),
                 detector.score_features(ood.features, ood.logits)) > FLOOR


# -- bad input ---------------------------------------------------------------------------------
def test_features_of_the_wrong_width_are_refused(cached) -> None:
    fit, test = cached["fit"], cached["test"]
    detector = KNN(k=5).fit_features(fit.features, fit.logits)
    with pytest.raises(ShapeError, match="fitted on 128-d features"):
        detector.score_features(test.features[:, :64], test.logits)
    with pytest.raises(ShapeError, match="columns; expected 10"):
        detector.score_features(test.features, test.logits[:, :5])


def test_empty_and_nan_inputs_are_refused(cached, default_classifier, fashion_small) -> None:
    fit, test = cached["fit"], cached["test"]
    with pytest.raises(ShapeError, match="empty"):
        Mahalanobis().fit(default_classifier, fashion_small["validation"].subset([]))
    with pytest.raises(ShapeError, match="empty"):
        Energy().fit_features(None, fit.logits[:0])
    detector = KNN(k=5).fit_features(fit.features, fit.logits)
    broken = test.features.clone()
    broken[0, 0] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        detector.score_features(broken, test.logits)
    with pytest.raises(InvalidInputError, match="needs the in-distribution labels"):
        Mahalanobis().fit_features(fit.features, fit.logits)
    with pytest.raises(InvalidInputError, match="needs the classification head"):
        ViM().fit_features(fit.features, fit.logits)
    with pytest.raises(InvalidInputError, match="probabilities"):
        MSP().fit_features(None, fit.logits.softmax(1))


def test_nan_scores_are_refused(cached) -> None:
    class NaNEstimator:
        def fit(self, x):
            return self

        def decision_function(self, x):
            return np.full(len(x), np.nan)

    fit, test = cached["fit"], cached["test"]
    detector = PyODAdapter(NaNEstimator()).fit_features(fit.features, fit.logits)
    with pytest.raises(InvalidInputError, match="NaN or infinite scores"):
        detector.score_features(test.features, test.logits)


@pytest.mark.parametrize(("detector", "message"), [
    (KNN(k=0), "`k` of KNN must be an integer > 0"),
    (ReAct(percentile=120), "`percentile` of ReAct must be a number in \\(0, 100\\]"),
    (ASH(variant="x"), "`variant` of ASH must be one of"),
    (GEN(gamma=2.0), "`gamma` of GEN must be a number in \\(0, 1\\)"),
    (MSP(temperature=-1.0), "`temperature` of MSP must be a number > 0"),
    (ViM(n_components=128), "`n_components` of ViM must be smaller than the feature width"),
    (KNN(k=10_000), "`k` of KNN must be at most the number of fitted samples"),
    (PyODAdapter(estimator=object()), "`estimator` of PyODAdapter must have fit"),
])
def test_bad_parameters_get_one_line_errors(detector, message, cached, default_classifier) -> None:
    fit = cached["fit"]
    with pytest.raises(InvalidParameterError, match=message) as info:
        detector.fit_features(fit.features, fit.logits, fit.labels, head=default_classifier.head)
    assert "\n" not in str(info.value)
