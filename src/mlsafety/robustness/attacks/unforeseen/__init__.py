"""Unforeseen (non-Lp) adversarial attacks in the spirit of ImageNet-UA (Kaufmann et al. 2023).

Each attack is one file registered in :data:`mlsafety.registry.ATTACKS` with metadata
``family="unforeseen"``: a differentiable distortion ``g(x, z)`` whose latent ``z`` is optimised
by signed-gradient ascent within the attack's own budget ``epsilon`` (levels ``low``, ``medium``,
``high``). :func:`evaluate_unforeseen` runs them and reports UA2, the mean accuracy over the
eight core attacks at the medium level.

>>> from mlsafety.robustness.attacks.unforeseen import evaluate_unforeseen
>>> report = evaluate_unforeseen(classifier, images, labels, levels=("medium",))
>>> report.ua2
"""

from mlsafety.robustness.attacks.unforeseen._base import LEVELS, UA2_CORE, UnforeseenAttack, optimise_latent
from mlsafety.robustness.attacks.unforeseen.blur import Blur
from mlsafety.robustness.attacks.unforeseen.elastic import Elastic
from mlsafety.robustness.attacks.unforeseen.evaluate import UnforeseenReport, evaluate_unforeseen, unforeseen_names
from mlsafety.robustness.attacks.unforeseen.fog import Fog
from mlsafety.robustness.attacks.unforeseen.gabor import Gabor
from mlsafety.robustness.attacks.unforeseen.glitch import Glitch
from mlsafety.robustness.attacks.unforeseen.jpeg import JPEG
from mlsafety.robustness.attacks.unforeseen.kaleidoscope import Kaleidoscope
from mlsafety.robustness.attacks.unforeseen.pixel import Pixel
from mlsafety.robustness.attacks.unforeseen.polkadot import Polkadot
from mlsafety.robustness.attacks.unforeseen.prison import Prison
from mlsafety.robustness.attacks.unforeseen.snow import Snow
from mlsafety.robustness.attacks.unforeseen.whirlpool import Whirlpool
from mlsafety.robustness.attacks.unforeseen.wood import Wood

__all__ = [
    "JPEG", "LEVELS", "UA2_CORE", "Blur", "Elastic", "Fog", "Gabor", "Glitch", "Kaleidoscope", "Pixel", "Polkadot",
    "Prison", "Snow", "UnforeseenAttack", "UnforeseenReport", "Whirlpool", "Wood", "evaluate_unforeseen",
    "optimise_latent", "unforeseen_names",
]
