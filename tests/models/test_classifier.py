"""The Classifier wrapper: normalisation, batching, features, mode/device restoration."""

from __future__ import annotations

import contextlib

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


class _FlattenByView(nn.Module):
    """A LeNet-style model that flattens a feature map with ``.view`` (fails channels-last)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        return self.head(h.view(h.shape[0], -1))


def test_channels_last_converts_and_restores_the_weights() -> None:
    torch.manual_seed(0)
    module = build_architecture("small_cnn", in_channels=1, n_classes=10, width=8).eval()
    classifier = Classifier(module, mean=[0.3], std=[0.4])
    # ``.data`` is a new alias at every access: compare storage and strides
    weights = {name: (p, p.data_ptr(), p.stride()) for name, p in module.named_parameters()}
    x = torch.rand(6, 1, 16, 16)
    with torch.no_grad():
        expected = module((x - 0.3) / 0.4)  # the model's own layout
    with classifier.channels_last() as active:
        assert active
        for name, (parameter, pointer, _) in weights.items():
            assert parameter is dict(module.named_parameters())[name]  # references stay valid
            if parameter.dim() == 4:
                assert parameter.data_ptr() != pointer
                # restrided also for the first convolution, where one input channel makes the layouts coincide
                assert parameter.stride()[1] == 1
        with classifier.channels_last() as nested:  # re-entrant
            assert nested
        assert classifier._layout_weights is not None, "the nested exit must not restore the layout"
        with torch.no_grad():
            logits = classifier.forward(x)
    assert torch.allclose(logits, expected, atol=1e-5)
    assert all((p.data_ptr(), p.stride()) == (pointer, stride) for p, pointer, stride in weights.values())
    with pytest.raises(ValueError, match="boom"), classifier.channels_last():
        raise ValueError("boom")
    assert all((p.data_ptr(), p.stride()) == (pointer, stride) for p, pointer, stride in weights.values())


def test_channels_last_is_off_without_convolutions_and_falls_back_for_view_models() -> None:
    linear = Classifier(_linear_model().eval())
    with linear.channels_last() as active:
        assert not active
    model = _FlattenByView().eval()
    classifier = Classifier(model)
    x = torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
    with classifier.channels_last() as active:
        assert active
        with torch.no_grad():
            logits = classifier.forward(x)  # .view fails on the channels-last feature map
        assert classifier._layout_weights is None, "the model's own layout after the failed attempt"
        assert model.conv.weight.is_contiguous()
    assert torch.equal(logits, expected)


def test_attacks_run_channels_last_and_agree_with_the_model_layout(tiny_classifier, digits_splits,
                                                                   monkeypatch) -> None:
    from mlsafety.robustness.attacks import APGD, PGD

    x, y = digits_splits["test"].images[:64], digits_splits["test"].labels[:64]
    layout = tiny_classifier.channels_last
    strides = [p.stride() for p in tiny_classifier.module.parameters()]
    for attack in (PGD(epsilon=0.04, n_steps=5), APGD(epsilon=0.04, n_steps=5)):
        seen = []
        monkeypatch.setattr(tiny_classifier, "channels_last", lambda seen=seen: _recording(layout(), seen))
        fast = attack(x, y, tiny_classifier)
        assert seen == [True], "the attack runs the convolutional model channels-last on the CPU"
        assert [p.stride() for p in tiny_classifier.module.parameters()] == strides
        monkeypatch.setattr(tiny_classifier, "channels_last", lambda: contextlib.nullcontext(False))
        plain = attack(x, y, tiny_classifier)
        # the same attack up to rounding: a few pixels may step the other way where a gradient
        # entry is near zero, and the fooled samples agree
        assert float((plain - fast).abs().gt(1e-4).float().mean()) < 0.02
        fooled = tiny_classifier.predict(fast) != y
        assert int((fooled != (tiny_classifier.predict(plain) != y)).sum()) <= 1
        assert 0 < int(fooled.sum()) < len(y)


@contextlib.contextmanager
def _recording(context, seen):
    with context as active:
        seen.append(active)
        yield active


class _WeightStandardisedConv(nn.Conv2d):
    """A convolution that flattens its own 4-D weight with ``.view`` (fails on a channels-last weight)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = self.weight.view(self.weight.shape[0], -1)
        weight = ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-5)).view_as(self.weight)
        return nn.functional.conv2d(x, weight, self.bias, padding=1)


def _variant(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "grouped_and_transposed":
        return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1, groups=3),
                             nn.ConvTranspose2d(6, 4, 2, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, 5))
    if kind == "weight_norm":
        conv = nn.utils.parametrizations.weight_norm(nn.Conv2d(3, 4, 3, padding=1))
        return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    if kind == "weight_view":
        return nn.Sequential(_WeightStandardisedConv(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(4, 5))
    module = build_architecture("small_cnn", in_channels=3, n_classes=5, width=4).eval()
    return torch.jit.script(module) if kind == "torchscript" else module


@pytest.mark.parametrize("kind", ["small_cnn", "torchscript", "grouped_and_transposed", "weight_norm", "weight_view"])
def test_channels_last_inference_matches_the_model_layout(kind: str) -> None:
    module = _variant(kind).eval()
    classifier = Classifier(module, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    x = torch.rand(7, 3, 8, 8)
    with torch.no_grad():
        expected = module((x - 0.5) / 0.25)
    strides = [p.stride() for p in module.parameters()]
    logits = classifier.predict_logits(x)
    assert torch.allclose(logits, expected, atol=1e-5)
    assert [p.stride() for p in module.parameters()] == strides, "the weights' layout must be restored"
    # a model that failed channels-last once keeps its own layout
    assert classifier._layout_unsupported == (kind == "weight_view")


def test_a_wrong_input_does_not_switch_channels_last_off() -> None:
    classifier = Classifier(_variant("small_cnn").eval())
    with pytest.raises(RuntimeError), classifier.channels_last(), torch.no_grad():
        classifier.forward(torch.rand(2, 1, 8, 8))  # one channel for a three-channel model
    assert not classifier._layout_unsupported
    assert all(p.is_contiguous() for p in classifier.module.parameters())
    with classifier.channels_last() as active:
        assert active


@pytest.mark.parametrize("first_call", ["predict", "attack"])
def test_lazy_modules_initialise_in_their_own_layout_then_run_channels_last(first_call: str) -> None:
    from mlsafety.robustness.attacks import PGD

    torch.manual_seed(0)
    module = nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3)).eval()
    classifier = Classifier(module, input_shape=(1, 8, 8))
    x = torch.rand(6, 1, 8, 8)
    if first_call == "predict":
        assert classifier.predict_logits(x).shape == (6, 3)
    else:
        assert PGD(epsilon=0.05, n_steps=2)(x, torch.tensor([0, 1, 2, 0, 1, 2]), classifier).shape == x.shape
    with classifier.channels_last() as used:
        assert used and module[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert module[0].weight.is_contiguous()
    assert torch.allclose(classifier.predict_logits(x), module(x), atol=1e-5)


class _ContiguousOnly(nn.Module):
    """A model that asserts its input layout, as some hand-written ones do."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.is_contiguous(), "expects NCHW-contiguous input"
        return self.head(torch.relu(self.conv(x)).flatten(1))


def test_a_model_that_asserts_its_layout_runs_in_its_own() -> None:
    module = _ContiguousOnly().eval()
    classifier = Classifier(module, input_shape=(3, 8, 8))
    x = torch.rand(4, 3, 8, 8)
    assert torch.allclose(classifier.predict_logits(x), module(x), atol=1e-6)
    assert classifier._layout_unsupported
    assert all(p.is_contiguous() for p in module.parameters())
