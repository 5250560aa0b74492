"""A BadNets-backdoored tiny digits model, trained once per session (a few seconds).

The planted effect is chosen to be strong on any CPU kernel (issue 13): a *white* 3x3 patch
survives STRIP's additive superimposition unchanged (1 + overlay clamps to 1), and a 7% poison
rate makes the poisoned samples about 40% of the target class, so Activation Clustering's
"smaller cluster" is the poison. With the earlier checkerboard patch at 10% (half the target
class), AC's AUROC ranged 0.78-0.98 and STRIP's flag rate 0.46-0.85 across seeds and kernels.
"""

from __future__ import annotations

import pytest
import torch

from mlsafety.data import ImageDataset
from mlsafety.models import Classifier, build_architecture
from mlsafety.monitoring.backdoor import BadNets, train_backdoored_classifier


@pytest.fixture(scope="session")
def badnets_attack() -> BadNets:
    return BadNets(patch_size=3, pattern="white", target_class=0, poison_rate=0.07, seed=0)


@pytest.fixture(scope="session")
def backdoored(digits_splits: dict[str, ImageDataset], badnets_attack: BadNets
               ) -> tuple[Classifier, ImageDataset, torch.Tensor]:
    """(model, poisoned training set, poisoned indices) for a white BadNets patch, target 0, 7% poison."""
    torch.manual_seed(0)
    module = build_architecture("small_cnn", in_channels=1, n_classes=10, width=8).eval()
    classifier = Classifier(module, mean=[0.3], std=[0.4], class_names=digits_splits["train"].class_names,
                            input_shape=(1, 16, 16), name="tiny_backdoored")
    _, poisoned, indices = train_backdoored_classifier(
        classifier, digits_splits["train"], badnets_attack, epochs=8, batch_size=64, learning_rate=1e-2,
        progress=False, seed=0)
    return classifier, poisoned, indices


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """A shadow zoo of 6 clean + 4 backdoored width-8 digits models (a few seconds), stored where
    ``find_zoo`` looks when ``$MLSAFETY_CACHE`` is ``tiny_zoo.folder.parent.parent``."""
    from mlsafety.monitoring.backdoor.zoo import Zoo, ZooConfig

    zoo = Zoo(ZooConfig(data="digits", width=8, n_train=600, epochs=5, batch_size=64, learning_rate=1e-2),
              root=tmp_path_factory.mktemp("cache") / "backdoor_zoo")
    zoo.build(n_clean=6, n_backdoored=4)
    return zoo
