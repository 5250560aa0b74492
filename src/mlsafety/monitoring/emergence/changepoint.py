"""Changepoint location with ``ruptures`` (Truong, Oudre & Vayatis 2020).

Truong, Oudre & Vayatis (2020), "Selective review of offline change point detection methods",
Signal Processing. ``Dynp`` finds the exact least-squares segmentation into ``n_bkps + 1``
piecewise-constant segments (cost :math:`\\sum_{segments} \\sum_t (y_t - \\bar y_{seg})^2`);
``KernelCPD`` does the same in a kernel feature space (``rbf`` is robust to outliers).
"""

from __future__ import annotations

import numpy as np

from mlsafety.exceptions import parameter_error


def changepoints(values: np.ndarray, n_changepoints: int = 1, method: str = "dynp") -> list[int]:
    """Indices ``k`` (1..n-1) where a new segment starts, i.e. between points ``k-1`` and ``k``.

    Parameters
    ----------
    values : ndarray, shape (n,)
        The curve (already oriented; the sign does not matter for the location).
    n_changepoints : int
        How many breaks to place (fewer when the curve is too short).
    method : str
        ``"dynp"`` (exact least squares, ``ruptures.Dynp`` with the ``l2`` cost) or ``"kernel"``
        (``ruptures.KernelCPD`` with the ``rbf`` kernel).
    """
    import ruptures

    values = np.asarray(values, dtype=float).reshape(-1, 1)
    n = values.shape[0]
    if not isinstance(n_changepoints, int) or n_changepoints < 1:
        raise parameter_error("n_changepoints", "changepoints", "an integer >= 1", n_changepoints)
    if method not in ("dynp", "kernel"):
        raise parameter_error("method", "changepoints", "'dynp' or 'kernel'", method)
    n_bkps = min(n_changepoints, n - 1)
    if n_bkps < 1 or np.ptp(values) == 0:
        return []
    if method == "dynp":
        algorithm = ruptures.Dynp(model="l2", min_size=1, jump=1).fit(values)
    else:
        algorithm = ruptures.KernelCPD(kernel="rbf", min_size=1, jump=1).fit(values)
    breaks = algorithm.predict(n_bkps=n_bkps)
    return [int(b) for b in breaks if 0 < b < n]
