"""The curve-model base class."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsafety.exceptions import InvalidInputError, NotFittedError


class CurveModel:
    """A parametric curve :math:`y = f(u; \\theta)` in log scale, fitted by least squares.

    ``n_params`` is the number of free parameters; a model needs at least that many points to
    fit. ``fit`` returns ``self`` and sets ``params_``; ``predict`` maps ``u`` to ``y``.
    """

    n_params: int = 2

    def get_params(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def fit(self, u: np.ndarray, y: np.ndarray) -> CurveModel:
        u, y = np.asarray(u, dtype=float), np.asarray(y, dtype=float)
        if u.shape != y.shape or u.ndim != 1:
            raise InvalidInputError(f"{type(self).__name__}.fit needs 1-D u and y of one length; got {u.shape}, "
                                    f"{y.shape}.")
        if u.size < self.n_params:
            raise InvalidInputError(f"{type(self).__name__} has {self.n_params} parameters and needs at least as "
                                    f"many points; got {u.size}.")
        self.params_ = self._fit(u, y)
        return self

    def predict(self, u: np.ndarray) -> np.ndarray:
        if getattr(self, "params_", None) is None:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(u, y) first.")
        return self._predict(np.asarray(u, dtype=float), self.params_)

    def _fit(self, u: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _predict(self, u: np.ndarray, params: np.ndarray) -> np.ndarray:
        raise NotImplementedError
