from __future__ import annotations

import math

import pytest
import torch

from mlsafety.data import ImageDataset
from mlsafety.exceptions import InvalidParameterError
from mlsafety.monitoring.backdoor import SIG, BadNets, Blended, WaNet, backdoor_metrics, poison_dataset
from mlsafety.registry import BACKDOOR_ATTACKS


def _data(n: int = 200, n_classes: int = 4, size: int = 12) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, size, size, generator=generator)
    labels = torch.arange(n) % n_classes
    return ImageDataset(images, labels, [str(i) for i in range(n_classes)])


@pytest.mark.parametrize("name", ["badnets", "blended", "wanet", "sig"])
def test_registered_contract(name: str) -> None:
    attack = BACKDOOR_ATTACKS.create(name)
    x = torch.rand(5, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    out = attack(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out, BACKDOOR_ATTACKS.create(name)(x))
    assert not torch.equal(out, x)
    # the trigger is input-agnostic: stamping is the same function for every image
    assert torch.equal(attack(x[:2]), out[:2])
    for key, value in attack.get_params().items():
        assert getattr(attack, key) is value


def test_badnets_hand_computed_patch() -> None:
    x = torch.full((1, 1, 8, 8), 0.5)
    out = BadNets(patch_size=2, margin=1, position="bottom_right")(x)
    expected = x.clone()
    expected[0, 0, 5:7, 5:7] = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.equal(out, expected)
    top_left = BadNets(patch_size=3, margin=0, position="top_left", pattern="white")(x)
    assert torch.equal(top_left[0, 0, :3, :3], torch.ones(3, 3))
    assert torch.equal(top_left[0, 0, 3:], x[0, 0, 3:])


def test_blended_and_sig_formulas() -> None:
    x = torch.rand(2, 1, 6, 10, generator=torch.Generator().manual_seed(2)) * 0.5 + 0.25
    key = torch.rand(1, 6, 10, generator=torch.Generator().manual_seed(3))
    out = Blended(alpha=0.3, pattern=key)(x)
    assert torch.allclose(out, 0.7 * x + 0.3 * key)
    sig = SIG(delta=0.1, frequency=2)(x)
    columns = torch.arange(10, dtype=torch.float64)
    wave = (0.1 * torch.sin(2 * math.pi * columns * 2 / 10)).float()
    assert torch.allclose(sig, (x + wave).clamp(0, 1), atol=1e-6)


def test_wanet_is_a_small_warp() -> None:
    # a smooth image is almost unchanged by a weak warp and unchanged by a vanishing one
    ramp = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    assert torch.allclose(WaNet(strength=1e-6)(ramp), ramp, atol=1e-5)
    warped = WaNet(strength=0.5)(ramp)
    assert 0 < float((warped - ramp).abs().max()) < 0.1


def test_target_mappings() -> None:
    y = torch.tensor([0, 1, 2, 3])
    assert BadNets(target_class=2).target_labels(y, 4).tolist() == [2, 2, 2, 2]
    assert BadNets(mapping="all_to_all").target_labels(y, 4).tolist() == [1, 2, 3, 0]


def test_poison_dataset_dirty_label() -> None:
    data = _data()
    attack = BadNets(patch_size=3, target_class=1, poison_rate=0.1, seed=4)
    poisoned, indices = poison_dataset(data, attack)
    assert indices.numel() == 20 and torch.equal(indices, indices.sort().values)
    assert torch.equal(indices, attack.poison_dataset(data)[1])
    assert (poisoned.labels[indices] == 1).all()
    others = torch.ones(len(data), dtype=torch.bool)
    others[indices] = False
    assert torch.equal(poisoned.images[others], data.images[others])
    assert torch.equal(poisoned.labels[others], data.labels[others])
    assert torch.equal(poisoned.images[indices], attack(data.images[indices]))
    assert poisoned.metadata["backdoor"]["n_poisoned"] == 20
    # all-to-all
    poisoned, indices = poison_dataset(data, BadNets(mapping="all_to_all"), poison_rate=0.25)
    assert torch.equal(poisoned.labels[indices], (data.labels[indices] + 1) % 4)


def test_poison_dataset_clean_label_sig() -> None:
    data = _data()
    poisoned, indices = SIG(target_class=2, poison_rate=0.2).poison_dataset(data)
    assert (data.labels[indices] == 2).all() and torch.equal(poisoned.labels, data.labels)
    with pytest.raises(InvalidParameterError, match="target class"):
        SIG(target_class=2, poison_rate=0.5).poison_dataset(data)
    with pytest.raises(InvalidParameterError, match="clean-label"):
        SIG(mapping="all_to_all")(data.images[:2])


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5, "0.1"])
def test_bad_poison_rate(rate: object) -> None:
    with pytest.raises(InvalidParameterError, match=r"^`poison_rate` of BadNets must be a number in \(0, 1\)"):
        poison_dataset(_data(), BadNets(poison_rate=rate))  # type: ignore[arg-type]


def test_trigger_larger_than_image() -> None:
    with pytest.raises(InvalidParameterError, match="`patch_size` of BadNets must be no larger than the images"):
        BadNets(patch_size=12)(torch.rand(1, 1, 10, 10))
    with pytest.raises(InvalidParameterError, match="`pattern` of Blended"):
        Blended(pattern=torch.rand(1, 20, 20))(torch.rand(1, 1, 10, 10))
    with pytest.raises(InvalidParameterError, match="`grid_size` of WaNet"):
        WaNet(grid_size=12)(torch.rand(1, 1, 10, 10))


def test_target_class_out_of_range() -> None:
    with pytest.raises(InvalidParameterError, match=r"`target_class` of BadNets must be in 0..3; got 7"):
        poison_dataset(_data(), BadNets(target_class=7))
    with pytest.raises(InvalidParameterError, match="`target_class` of Blended"):
        Blended(target_class=-1)(torch.rand(1, 1, 8, 8))


def test_backdoored_model_has_high_asr(backdoored, badnets_attack, digits_splits, tiny_classifier) -> None:
    classifier, _, _ = backdoored
    metrics = backdoor_metrics(classifier, badnets_attack, digits_splits["test"])
    assert metrics["attack_success_rate"] > 0.9
    assert metrics["clean_accuracy"] > 0.85
    clean = backdoor_metrics(tiny_classifier, badnets_attack, digits_splits["test"])
    assert clean["attack_success_rate"] < 0.3
