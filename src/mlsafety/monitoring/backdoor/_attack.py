"""The shared base of backdoor attacks: trigger application, target mapping and poisoning.

A backdoor attack (a *trojan*) has two halves: a **trigger** (a function of the image
alone, implemented by :meth:`BackdoorAttack.apply_trigger`) and a **target mapping**
from the true label to the label the adversary wants:

* ``"all_to_one"``: every triggered input goes to ``target_class``;
* ``"all_to_all"``: a triggered input of class ``y`` goes to ``(y + 1) mod K``.

Poisoning a training set replaces a fraction ``poison_rate`` of its samples by triggered
copies carrying the target label (dirty-label), or, for clean-label attacks such as SIG,
adds the trigger to samples that already belong to the target class.
"""

from __future__ import annotations

import numbers
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from mlsafety._validation import check_fraction, check_images, check_in, check_labels
from mlsafety.base import Perturbation
from mlsafety.exceptions import InvalidParameterError, parameter_error

if TYPE_CHECKING:
    from mlsafety.data.dataset import ImageDataset
    from mlsafety.models.classifier import Classifier

MAPPINGS = ("all_to_one", "all_to_all")


class BackdoorAttack(Perturbation):
    """A trigger plus a target mapping; subclasses implement :meth:`apply_trigger`.

    Parameters
    ----------
    target_class : int
        The adversary's target for ``"all_to_one"`` (ignored by ``"all_to_all"``).
    mapping : {"all_to_one", "all_to_all"}
        How true labels map to target labels.
    poison_rate : float in (0, 1)
        Fraction of the training set that :meth:`poison_dataset` poisons.
    seed : int or None
        Seeds the trigger (random patterns, warping fields) and the choice of poisoned
        samples; equal seeds give equal outputs.
    """

    clean_label: bool = False

    def __init__(self, target_class: int = 0, mapping: str = "all_to_one", poison_rate: float = 0.1,
                 seed: int | None = 0) -> None:
        self.target_class = target_class
        self.mapping = mapping
        self.poison_rate = poison_rate
        self.seed = seed

    # -- validation --------------------------------------------------------------------
    def _validate(self) -> None:
        owner = type(self).__name__
        check_in(self.mapping, MAPPINGS, "mapping", owner)
        if not isinstance(self.target_class, numbers.Integral) or isinstance(self.target_class, bool) \
                or self.target_class < 0:
            raise parameter_error("target_class", owner, "a class index >= 0", self.target_class)
        check_fraction(self.poison_rate, "poison_rate", owner)
        if self.clean_label and self.mapping != "all_to_one":
            raise parameter_error("mapping", owner, "'all_to_one' for a clean-label attack", self.mapping,
                                  "Clean-label poisoning keeps labels, so it can only target one class.")

    def _check_target(self, n_classes: int) -> None:
        if self.mapping == "all_to_one" and self.target_class >= n_classes:
            raise parameter_error("target_class", type(self).__name__, f"in 0..{n_classes - 1}",
                                  self.target_class, f"The data has {n_classes} classes.")

    # -- the trigger ---------------------------------------------------------------------
    @abstractmethod
    def apply_trigger(self, x: torch.Tensor) -> torch.Tensor:
        """Stamp the trigger on a batch (N, C, H, W) in [0, 1]; same shape, device, dtype."""

    def perturb(self, x: torch.Tensor, y: torch.Tensor | None = None,
                classifier: Classifier | None = None) -> torch.Tensor:
        """The triggered images (labels and model are not needed to stamp a trigger)."""
        self._validate()
        return self.apply_trigger(x).clamp(0.0, 1.0).to(dtype=x.dtype)

    def target_labels(self, y: torch.Tensor, n_classes: int) -> torch.Tensor:
        """Labels the adversary wants for triggered inputs whose true labels are ``y``."""
        self._validate()
        self._check_target(n_classes)
        y = check_labels(y, n_classes=n_classes)
        if self.mapping == "all_to_one":
            return torch.full_like(y, int(self.target_class))
        return (y + 1) % n_classes

    def attack_mask(self, y: torch.Tensor) -> torch.Tensor:
        """Which test samples count for the attack success rate (those not already at the target)."""
        if self.mapping == "all_to_one":
            return y != int(self.target_class)
        return torch.ones_like(y, dtype=torch.bool)

    # -- poisoning -----------------------------------------------------------------------
    def choose_poison_indices(self, labels: torch.Tensor) -> torch.Tensor:
        """Seeded choice of ``round(poison_rate * N)`` indices to poison (sorted)."""
        self._validate()
        n = labels.shape[0]
        n_poison = max(1, round(self.poison_rate * n))
        candidates = (torch.nonzero(labels == int(self.target_class)).flatten() if self.clean_label
                      else torch.arange(n))
        if n_poison > candidates.numel():
            raise parameter_error(
                "poison_rate", type(self).__name__,
                f"at most {candidates.numel() / n:.3g} here (the target class's share of the data)",
                self.poison_rate, "A clean-label attack can only poison samples of the target class.")
        generator = torch.Generator().manual_seed(0 if self.seed is None else int(self.seed))
        order = torch.randperm(candidates.numel(), generator=generator)[:n_poison]
        return candidates[order].sort().values

    def poison_dataset(self, data: ImageDataset) -> tuple[ImageDataset, torch.Tensor]:
        """Return a poisoned copy of ``data`` and the indices of the poisoned samples."""
        return poison_dataset(data, self)


def poison_dataset(data: ImageDataset, attack: BackdoorAttack,
                   poison_rate: float | None = None) -> tuple[ImageDataset, torch.Tensor]:
    """Poison a fraction of a data set with a backdoor attack.

    Parameters
    ----------
    data : ImageDataset
        Clean training data (left unchanged).
    attack : BackdoorAttack
        The trigger and target mapping.
    poison_rate : float in (0, 1), optional
        Overrides ``attack.poison_rate``.

    Returns
    -------
    poisoned : ImageDataset
        A copy of ``data`` whose samples at ``indices`` carry the trigger and (for
        dirty-label attacks) the target label.
    indices : Tensor, shape (n_poison,)
        Sorted indices of the poisoned samples.

    Raises
    ------
    InvalidParameterError
        If the poison rate is outside (0, 1), the target class is out of range, or the
        trigger does not fit in the images.
    """
    from mlsafety.data.dataset import ImageDataset

    if not isinstance(attack, BackdoorAttack):
        raise InvalidParameterError(
            f"`attack` of poison_dataset must be a BackdoorAttack; got {type(attack).__name__}. "
            "Create one with BACKDOOR_ATTACKS.create('badnets')."
        )
    if poison_rate is not None:
        check_fraction(poison_rate, "poison_rate", "poison_dataset")
        attack = type(attack)(**{**attack.get_params(), "poison_rate": poison_rate})
    attack._validate()
    attack._check_target(data.n_classes)
    check_images(data.images, "data.images")
    indices = attack.choose_poison_indices(data.labels)
    images = data.images.clone()
    labels = data.labels.clone()
    images[indices] = attack(data.images[indices])
    if not attack.clean_label:
        labels[indices] = attack.target_labels(data.labels[indices], data.n_classes)
    metadata: dict[str, Any] = dict(data.metadata)
    metadata["backdoor"] = {"attack": attack.registry_name or type(attack).__name__,
                            **attack.get_params(), "n_poisoned": int(indices.numel())}
    poisoned = ImageDataset(images, labels, list(data.class_names), f"{data.name}+{attack.registry_name}",
                            metadata)
    return poisoned, indices


def triggered_test_set(data: ImageDataset, attack: BackdoorAttack) -> ImageDataset:
    """The samples of ``data`` that count for the ASR, triggered and labelled with their targets."""
    from mlsafety.data.dataset import ImageDataset

    keep = attack.attack_mask(data.labels)
    images = attack(data.images[keep])
    labels = attack.target_labels(data.labels[keep], data.n_classes)
    return ImageDataset(images, labels, list(data.class_names), f"{data.name}+trigger", dict(data.metadata))


def image_size_error(owner: str, param: str, trigger: tuple[int, ...], image: tuple[int, ...]) -> InvalidParameterError:
    """The error for a trigger that does not fit in the images."""
    return parameter_error(param, owner, f"no larger than the images {tuple(image)}", tuple(trigger),
                           "Use a smaller trigger or larger images.")
