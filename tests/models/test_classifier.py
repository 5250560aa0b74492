"""The Classifier wrapper: normalisation, batching, features, mode/device restoration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlsafety.exceptions import InvalidInputError, MLSafetyWarning, ShapeError
from mlsafety.models import Classifier, build_architecture


def _linear_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))


def test_batched_logits_match_single_pass_and_restore_mode() -> None:
    module = _linear_model()
    module.train()
    with pytest.warns(MLSafetyWarning, match="train mode"):
        classifier = Classifier(module, mean=[0.5], std=[0.25], batch_size=3)
    x = torch.rand(10, 1, 4, 4)
    logits = classifier.predict_logits(x)
    assert module.training, "the caller's train mode must be restored"
    module.eval()
    with torch.no_grad():
        expected = module((x - 0.5) / 0.25)
    assert torch.allclose(logits, expected, atol=1e-6)


def test_penultimate_features_are_input_of_last_linear() -> None:
    module = _linear_model().eval()
    classifier = Classifier(module)
    x = torch.rand(5, 1, 4, 4)
    features, logits = classifier.features(x)
    assert features.shape == (5, 8)
    head = classifier.head
    assert torch.allclose(head(features), logits, atol=1e-5)
    named = Classifier(module, feature_layer="2")
    assert named.features(x)[0].shape == (5, 8)


def test_bad_inputs_get_clear_errors() -> None:
    classifier = Classifier(_linear_model().eval(), input_shape=(1, 4, 4))
    with pytest.raises(ShapeError, match=r"unsqueeze\(0\)"):
        classifier.predict_logits(torch.rand(1, 4, 4))
    with pytest.raises(InvalidInputError, match="divide by 255"):
        classifier.predict_logits(torch.rand(2, 1, 4, 4) * 255)
    with pytest.raises(InvalidInputError, match="NaN"):
        classifier.predict_logits(torch.full((2, 1, 4, 4), float("nan")))
    with pytest.raises(ShapeError, match="expects"):
        classifier.predict_logits(torch.rand(2, 3, 4, 4))
    with pytest.raises(InvalidInputError, match="floating"):
        classifier.predict_logits(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


def test_softmax_model_is_refused() -> None:
    classifier = Classifier(nn.Sequential(_linear_model(), nn.Softmax(dim=1)).eval())
    with pytest.raises(InvalidInputError, match="probabilities"):
        classifier.validate_outputs(torch.rand(4, 1, 4, 4))


def test_fingerprint_tracks_weights() -> None:
    module = build_architecture("small_cnn", width=4).eval()
    classifier = Classifier(module)
    before = classifier.fingerprint()
    with torch.no_grad():
        module.classifier.bias.add_(1.0)
    assert classifier.fingerprint() != before


def test_tiny_classifier_learns_digits(tiny_classifier, digits_splits) -> None:
    from mlsafety.models import accuracy

    assert accuracy(tiny_classifier, digits_splits["test"]) > 0.8


def test_default_model_accuracy(default_classifier, fashion_small) -> None:
    from mlsafety.models import accuracy

    assert default_classifier.input_shape == (1, 28, 28)
    assert accuracy(default_classifier, fashion_small["test"]) > 0.88


def test_training_with_very_few_steps(digits_splits) -> None:
    from mlsafety.models import train_classifier

    module = build_architecture("small_cnn", width=4).eval()
    classifier = Classifier(module, input_shape=(1, 16, 16))
    history = train_classifier(classifier, digits_splits["train"].head(20), epochs=1, batch_size=8, progress=False)
    assert len(history.train_loss) == 1 and history.train_loss[0] > 0
