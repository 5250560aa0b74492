"""AutoAttack: the parameter-free ensemble used as the standard robustness evaluation."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from mlsafety._validation import check_images, check_in, check_labels, check_positive
from mlsafety.exceptions import InvalidInputError
from mlsafety.registry import ATTACKS
from mlsafety.robustness.attacks._common import Attack, check_epsilon, check_norm, check_seed, lp_norm
from mlsafety.robustness.attacks.apgd import APGD, APGDT
from mlsafety.robustness.attacks.fab import FAB
from mlsafety.robustness.attacks.square import Square

if TYPE_CHECKING:
    from mlsafety.models.classifier import Classifier

VERSIONS = ("standard", "rand")


@dataclass
class AutoAttackResult:
    """Per-sample worst case over the attacks of an AutoAttack run.

    Attributes
    ----------
    adversarial : Tensor (N, C, H, W), the first successful adversarial example per sample
        (the clean image where every attack failed).
    robust : Tensor (N,) bool, correctly classified and not fooled by any attack.
    clean_correct : Tensor (N,) bool.
    broken_by : list of N attack names (``"clean"`` if misclassified without attack, ``""`` if robust).
    robust_accuracy_after : robust accuracy after each attack in order (cumulative worst case).
    seconds : wall time per attack.
    """

    adversarial: torch.Tensor
    robust: torch.Tensor
    clean_correct: torch.Tensor
    broken_by: list[str]
    robust_accuracy_after: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.float().mean())

    @property
    def robust_accuracy(self) -> float:
        return float(self.robust.float().mean())

    def summary(self) -> dict[str, Any]:
        return {"clean_accuracy": self.clean_accuracy, "robust_accuracy": self.robust_accuracy,
                "robust_accuracy_after": dict(self.robust_accuracy_after), "seconds": dict(self.seconds),
                "n_samples": int(self.robust.numel())}


@ATTACKS.register("autoattack", threat_models=("Linf", "L2"), black_box=False)
class AutoAttack(Attack):
    """AutoAttack (standard or rand version): the per-sample worst case over diverse attacks.

    Croce & Hein (2020), "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks" (ICML); the evaluation used by RobustBench.

    * ``version='standard'`` runs, each on the samples still robust: APGD-CE (100 steps, no
      restarts), APGD-T (9 targets x 100 steps), FAB-T (9 targets x 100 steps) and Square
      (5,000 queries), the reference parameters. A sample counts as robust only if it is
      correctly classified and every attack fails:

      .. math:: \\mathrm{RA} = \\frac{1}{N}\\sum_i \\mathbb{1}\\big[\\forall a:\\ f(a(x_i)) = y_i\\big]

    * ``version='rand'`` (for randomised defences) runs APGD-CE and APGD-DLR with
      Expectation over Transformation (20 gradient samples per step).

    The number of target classes adapts to the data: at most ``n_classes - 1``.

    Parameters
    ----------
    epsilon : radius; norm : "Linf" or "L2".
    version : "standard" or "rand".
    n_target_classes : targets of APGD-T and FAB-T (9 in the reference).
    attacks : optional subset/order of ``("apgd-ce", "apgd-t", "fab-t", "square", "apgd-dlr")``
        (a custom version); None for the version's list.
    n_steps : iterations of APGD and FAB (100); n_queries : Square queries (5,000).
    seed : seed of every attack.

    Examples
    --------
    >>> result = AutoAttack(epsilon=0.1).evaluate(images, labels, classifier)
    >>> result.robust_accuracy, result.robust_accuracy_after
    """

    def __init__(self, epsilon: float = 8 / 255, norm: str = "Linf", version: str = "standard",
                 n_target_classes: int = 9, attacks: tuple[str, ...] | None = None, n_steps: int = 100,
                 n_queries: int = 5000, seed: int | None = 0) -> None:
        self.epsilon = epsilon
        self.norm = norm
        self.version = version
        self.n_target_classes = n_target_classes
        self.attacks = attacks
        self.n_steps = n_steps
        self.n_queries = n_queries
        self.seed = seed

    ATTACK_NAMES = ("apgd-ce", "apgd-t", "fab-t", "square", "apgd-dlr")

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_norm(self.norm, owner)
        check_epsilon(self.epsilon, self.norm, owner)
        check_seed(self.seed, owner)
        check_in(self.version, VERSIONS, "version", owner)
        check_positive(self.n_target_classes, "n_target_classes", owner, integer=True)
        check_positive(self.n_steps, "n_steps", owner, integer=True)
        check_positive(self.n_queries, "n_queries", owner, integer=True)
        for name in self.attack_list():
            check_in(name, self.ATTACK_NAMES, "attacks", owner)

    def attack_list(self) -> tuple[str, ...]:
        if self.attacks is not None:
            return tuple(self.attacks)
        return ("apgd-ce", "apgd-t", "fab-t", "square") if self.version == "standard" else ("apgd-ce", "apgd-dlr")

    def components(self) -> dict[str, Attack]:
        """The configured attacks, by AutoAttack name."""
        common = {"epsilon": self.epsilon, "norm": self.norm, "seed": self.seed}
        eot = 20 if self.version == "rand" else 1
        return {
            "apgd-ce": APGD(loss="ce", n_steps=self.n_steps, eot_iter=eot, **common),
            "apgd-dlr": APGD(loss="dlr", n_steps=self.n_steps, eot_iter=eot, **common),
            "apgd-t": APGDT(n_steps=self.n_steps, n_target_classes=self.n_target_classes, **common),
            "fab-t": FAB(n_steps=self.n_steps, n_target_classes=self.n_target_classes, targeted=True, **common),
            "square": Square(n_queries=self.n_queries, p_init=0.8, rescale_schedule=False, **common),
        }

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, classifier: Classifier) -> AutoAttackResult:
        """Run the attacks one after the other on the samples still robust.

        Parameters
        ----------
        x : Tensor (N, C, H, W) in [0, 1]; y : Tensor (N,) true labels; classifier : the model.

        Returns
        -------
        AutoAttackResult
        """
        self._check_params()
        x = check_images(x)
        if y is None:
            raise InvalidInputError("AutoAttack.evaluate needs the true labels `y`.")
        y = check_labels(y, x.shape[0], classifier.n_classes).to(x.device)
        with classifier.evaluating():
            logits = classifier.predict_logits(x)
        if self.attack_list() and "apgd-dlr" in self.attack_list() and logits.shape[1] < 3:
            raise InvalidInputError("APGD-DLR needs at least 3 classes; pass attacks=('apgd-ce', ...) instead.")
        clean = logits.argmax(1).to(x.device) == y
        robust = clean.clone()
        adversarial = x.clone()
        broken_by = ["" if ok else "clean" for ok in clean.tolist()]
        result = AutoAttackResult(adversarial, robust, clean, broken_by)
        components = self.components()
        for name in self.attack_list():
            start = time.perf_counter()
            ids = robust.nonzero().squeeze(1)
            if ids.numel():
                attack = components[name]
                candidate = attack.perturb(x[ids], y[ids], classifier)
                size = lp_norm(candidate - x[ids], self.norm)
                fooled = classifier.predict(candidate).to(x.device) != y[ids]
                fooled &= size <= self.epsilon * (1 + 1e-5) + 1e-7
                adversarial[ids[fooled]] = candidate[fooled]
                robust[ids[fooled]] = False
                for i in ids[fooled].tolist():
                    broken_by[i] = name
            result.robust_accuracy_after[name] = float(robust.float().mean())
            result.seconds[name] = round(time.perf_counter() - start, 3)
        return result

    def perturb(self, x: torch.Tensor, y: torch.Tensor | None = None,
                classifier: Classifier | None = None) -> torch.Tensor:
        """The worst-case adversarial examples of :meth:`evaluate`."""
        from mlsafety.models.classifier import Classifier

        if not isinstance(classifier, Classifier):
            raise InvalidInputError("`classifier` of AutoAttack.perturb must be an mlsafety Classifier.")
        if y is None:
            y = classifier.predict(check_images(x))
        return self.evaluate(x, y, classifier).adversarial

    def _attack_batch(self, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:  # pragma: no cover - evaluate() is used
        raise NotImplementedError
