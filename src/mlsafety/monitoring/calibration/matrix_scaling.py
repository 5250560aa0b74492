"""Matrix scaling with off-diagonal and intercept regularisation (Guo et al., 2017; Kull et al., 2019)."""

from __future__ import annotations

import torch

from mlsafety._validation import check_positive
from mlsafety.metrics.calibration import _one_thread
from mlsafety.monitoring.calibration.base import LogitScalingCalibrator, minimise_lbfgs
from mlsafety.registry import CALIBRATORS

#: Newton's method forms and factorises the Hessian over the K(K + 1) parameters at every step;
#: above this many (more than 21 classes) L-BFGS, which needs only gradients, is used instead
NEWTON_MAX_PARAMETERS = 500
#: Newton's method stops when no partial derivative of the objective exceeds this
STOP_TOLERANCE = 1e-9
#: the fit has converged when no partial derivative of the objective exceeds this (either solver;
#: rounding in the gradient of many logits may keep it above ``STOP_TOLERANCE`` at the minimum)
GRADIENT_TOLERANCE = 1e-6
#: rows per block when the Hessian is accumulated (at most 8 MB of temporaries at 462 parameters)
HESSIAN_ROWS = 2048


def matrix_scaling_problem(logits: torch.Tensor, off_diagonal_penalty: float, bias_penalty: float,
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, penalty, theta) of the fit: float64 logits with a column of ones, the per-parameter
    weights of the ODIR penalty, and the identity map as the starting point."""
    z = logits.double()
    n, k = z.shape
    eye = torch.eye(k, dtype=z.dtype, device=z.device)
    x = torch.cat([z, torch.ones(n, 1, dtype=z.dtype, device=z.device)], 1)
    penalty = torch.zeros(k, k + 1, dtype=z.dtype, device=z.device)
    penalty[:, :k] = off_diagonal_penalty / (k * (k - 1)) * (1.0 - eye)
    penalty[:, k] = bias_penalty / k
    theta = torch.cat([eye, torch.zeros(k, 1, dtype=z.dtype, device=z.device)], 1)
    return x, penalty, theta


def _objective(x: torch.Tensor, labels: torch.Tensor, theta: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """Mean NLL of ``softmax(x @ theta.T)`` plus ``sum(penalty * theta^2)``; row ``a`` of
    ``theta`` holds ``(W_a, b_a)`` and ``x`` the logits with a column of ones."""
    return torch.nn.functional.cross_entropy(x @ theta.T, labels) + (penalty * theta.square()).sum()


def _gradient(x: torch.Tensor, targets: torch.Tensor, theta: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    return (torch.softmax(x @ theta.T, 1) - targets).T @ x / x.shape[0] + 2 * penalty * theta


def _hessian(x: torch.Tensor, theta: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """``sum_n (diag(p_n) - p_n p_n^T) kron (x_n x_n^T) / N`` plus the penalty's diagonal,
    accumulated over row blocks so that memory stays bounded for any N."""
    n, width = x.shape
    k = theta.shape[0]
    hessian = torch.diag(2 * penalty.flatten())
    blocks = torch.zeros(k, width, width, dtype=x.dtype, device=x.device)
    for start in range(0, n, HESSIAN_ROWS):
        rows = x[start:start + HESSIAN_ROWS]
        probabilities = torch.softmax(rows @ theta.T, 1)
        weighted = (probabilities[:, :, None] * rows[:, None, :]).reshape(len(rows), k * width)
        hessian -= weighted.T @ weighted / n
        blocks += torch.einsum("na,ni,nj->aij", probabilities, rows, rows) / n
    return hessian + torch.block_diag(*blocks)


def _newton(x: torch.Tensor, labels: torch.Tensor, theta: torch.Tensor, penalty: torch.Tensor,
            max_iter: int) -> tuple[torch.Tensor, int, bool]:
    """Damped Newton's method with an Armijo backtracking line search (Nocedal & Wright, 2006,
    Sec. 3.1 and 3.4) on the convex objective :func:`_objective`; returns (theta, iterations,
    converged).

    With ``p_n = softmax(theta x_n)`` the gradient is ``(P - Y)^T X / N + 2 c theta`` and the
    Hessian of the mean NLL is ``sum_n (diag(p_n) - p_n p_n^T) kron (x_n x_n^T) / N``, formed
    exactly here. The NLL is flat along ``W -> W + 1 v^T``, ``b -> b + t 1`` (softmax is
    invariant to a shift shared by all classes), where only the penalties give curvature: a
    Levenberg ridge keeps the Newton system solvable when they are zero. It stops when no
    partial derivative exceeds ``STOP_TOLERANCE``, or when the line search can no longer
    lower the objective (rounding); it has converged if they are below ``GRADIENT_TOLERANCE``.
    """
    k, width = theta.shape
    targets = torch.nn.functional.one_hot(labels, k).to(x.dtype)
    identity = torch.eye(k * width, dtype=x.dtype, device=x.device)
    value = _objective(x, labels, theta, penalty)
    gradient = _gradient(x, targets, theta, penalty)
    iteration = 0
    while iteration < max_iter and float(gradient.abs().max()) > STOP_TOLERANCE:
        iteration += 1
        hessian = _hessian(x, theta, penalty)
        ridge, scale = 0.0, float(hessian.diagonal().abs().max())
        while True:
            factor, info = torch.linalg.cholesky_ex(hessian + ridge * identity)
            if int(info) == 0:
                break
            ridge = max(ridge * 100, 1e-12 * scale)
        step = -torch.cholesky_solve(gradient.reshape(-1, 1), factor).reshape(k, width)
        slope = float((gradient * step).sum())
        if slope >= 0:  # no descent direction left at this precision
            break
        size = 1.0
        for _ in range(60):
            candidate = theta + size * step
            candidate_value = _objective(x, labels, candidate, penalty)
            if float(candidate_value) <= float(value) + 1e-4 * size * slope:
                break
            size /= 2
        else:
            break
        theta, value = candidate, candidate_value
        gradient = _gradient(x, targets, theta, penalty)
    return theta, iteration, float(gradient.abs().max()) <= GRADIENT_TOLERANCE


@CALIBRATORS.register("matrix_scaling", binary=False)
class MatrixScaling(LogitScalingCalibrator):
    """A full linear map of the logits, fitted by regularised NLL on validation data.

    Guo, Pleiss, Sun & Weinberger (2017), "On calibration of modern neural networks";
    regularised as in the ODIR variant of Kull, Perello-Nieto, Kängsepp, Silva Filho, Song
    & Flach (2019), "Beyond temperature scaling: obtaining well-calibrated multiclass
    probabilities with Dirichlet calibration":

    .. math:: \\hat p = \\mathrm{softmax}(W z + b), \\quad
              \\mathcal{L} = \\mathrm{NLL} + \\frac{\\lambda}{K(K-1)} \\sum_{i \\ne j} W_{ij}^2
              + \\frac{\\mu}{K} \\sum_j b_j^2

    With K^2 + K parameters, unregularised matrix scaling over-fits small validation sets
    (Guo et al. report it as the worst method on many classes); the penalties pull it
    towards vector scaling. Fitted from the identity map by Newton's method with a line
    search up to 21 classes (the objective is convex; it converges to a gradient below 1e-9
    in tens of steps), and by L-BFGS above that. The objective is badly conditioned (the
    logits of one model are strongly correlated), so a first-order fit stopped early moves
    with changes of 1e-6 in the logits; the Newton fit does not.

    Parameters
    ----------
    max_iter : int
        Iterations of the solver (Newton steps, or L-BFGS iterations above 21 classes).
    off_diagonal_penalty : float
        λ, the penalty on off-diagonal weights.
    bias_penalty : float
        μ, the penalty on the intercepts.

    Attributes
    ----------
    weight_ : Tensor (K, K)
    bias_ : Tensor (K,)
    n_iter_ : int
        Iterations the solver ran.
    converged_ : bool
        Whether every partial derivative of the objective ended below 1e-6 (Newton's method
        usually ends near 1e-14).
    """

    weight_: torch.Tensor | None = None
    bias_: torch.Tensor | None = None
    n_iter_: int | None = None
    converged_: bool | None = None

    def __init__(self, max_iter: int = 150, off_diagonal_penalty: float = 1e-2,
                 bias_penalty: float = 1e-2) -> None:
        self.max_iter = max_iter
        self.off_diagonal_penalty = off_diagonal_penalty
        self.bias_penalty = bias_penalty

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        check_positive(self.max_iter, "max_iter", "MatrixScaling", integer=True)
        check_positive(self.off_diagonal_penalty, "off_diagonal_penalty", "MatrixScaling", allow_zero=True)
        check_positive(self.bias_penalty, "bias_penalty", "MatrixScaling", allow_zero=True)
        x, penalty, theta = matrix_scaling_problem(logits, self.off_diagonal_penalty, self.bias_penalty)
        k = theta.shape[0]
        if k * (k + 1) <= NEWTON_MAX_PARAMETERS:
            with torch.no_grad(), _one_thread():
                theta, self.n_iter_, self.converged_ = _newton(x, labels, theta, penalty, self.max_iter)
        else:
            theta.requires_grad_(True)
            optimiser_state: dict = {}
            minimise_lbfgs([theta], lambda: _objective(x, labels, theta, penalty), self.max_iter,
                           state=optimiser_state)
            theta = theta.detach()
            self.n_iter_ = int(optimiser_state.get("n_iter", self.max_iter))
            gradient = _gradient(x, torch.nn.functional.one_hot(labels, k).to(x.dtype), theta, penalty)
            self.converged_ = float(gradient.abs().max()) <= GRADIENT_TOLERANCE
        self.weight_, self.bias_ = theta[:, :k].contiguous(), theta[:, k].contiguous()

    def _calibrated_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits @ self.weight_.to(logits.device).T + self.bias_.to(logits.device)
