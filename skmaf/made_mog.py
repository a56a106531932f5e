"""MADEMoGDensity: one MADE with mixture-of-Gaussian conditionals."""

from __future__ import annotations

from numbers import Integral

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseFlowDensity
from ._docstrings import fill_docstring
from .flows import Flow, build_made_mog

__all__ = ["MADEMoGDensity"]


@fill_docstring
class MADEMoGDensity(BaseFlowDensity):
    """MADE with mixture-of-Gaussian conditionals (MADE MoG; Papamakarios et al., 2017).

    One MADE outputs, for every input ``x_i``, the weights, means and scales of a
    mixture of ``n_components`` Gaussians for ``p(x_i | x_<i)``. Log-densities
    take one pass; sampling takes D sequential passes. With ``n_components=1``
    this is the paper's plain (Gaussian) MADE.

    :meth:`transform` is the Rosenblatt map: each coordinate through its
    mixture CDF given those before it, then the standard normal quantile, so
    that under the model the rows come out i.i.d. N(0, I) (one pass);
    :meth:`inverse_transform` inverts it coordinate by coordinate (D passes).

    Parameters
    ----------
    n_components : int, default=10
        Mixture components per conditional, the paper's C.
    n_hidden_layers : int, default=1
        Hidden layers of the MADE, the paper's L.
    n_hidden_units : int, default=100
        Units in each hidden layer, the paper's H.
    activation : {"relu", "tanh"}, default="relu"
        Hidden-unit nonlinearity.
    input_order : {"sequential", "reverse", "random"} or array-like of int, \\
            default="sequential"
        Autoregressive order. ``"random"`` draws one from ``random_state``; an
        array must be a permutation of ``range(n_features)``.

    %(dequantize_parameter)s
    %(training_parameters)s

    Attributes
    ----------
    %(fitted_attributes)s

    See Also
    --------
    MAFDensity : A flow of Gaussian MADEs (``n_components > 1`` adds a MADE MoG base).
    RealNVPDensity : Real NVP, a flow of affine coupling layers.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.

    Notes
    -----
    ``log p(x) = sum_i log sum_c w_ic N(x_i; m_ic, s_ic^2)`` where
    ``w_i, m_i, s_i`` depend on ``x_<i`` through the MADE; the sum over
    components is a log-sum-exp. The log-scales are smoothly bounded to ±7.

    %(far_from_the_data)s
    References
    ----------
    G. Papamakarios, T. Pavlakou and I. Murray, "Masked Autoregressive Flow for
    Density Estimation", NeurIPS 2017, section 3.3.

    Examples
    --------
    >>> import numpy as np
    >>> from skmaf import MADEMoGDensity
    >>> rng = np.random.RandomState(0)
    >>> x2 = rng.normal(0, 2, size=500)
    >>> X = np.column_stack([rng.normal(x2 ** 2 / 4, 1), x2])
    >>> model = MADEMoGDensity(n_components=5, n_hidden_units=16, max_iter=20,
    ...                        random_state=0).fit(X)
    >>> model.score_samples(X[:2]).shape
    (2,)
    >>> model.sample(3, random_state=0).shape
    (3, 2)
    >>> np.allclose(model.inverse_transform(model.transform(X[:5])), X[:5])
    True
    """

    _parameter_constraints: dict = {
        **BaseFlowDensity._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_hidden_layers": [Interval(Integral, 1, None, closed="left")],
        "n_hidden_units": [Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"relu", "tanh"})],
        "input_order": [StrOptions({"sequential", "reverse", "random"}), "array-like"],
    }

    _architecture_parameters = (
        "n_hidden_layers",
        "n_hidden_units",
        "n_components",
        "activation",
        "input_order",
    )

    def __init__(
        self,
        n_components=10,
        *,
        n_hidden_layers=1,
        n_hidden_units=100,
        activation="relu",
        input_order="sequential",
        dequantize="auto",
        max_iter=200,
        batch_size=100,
        learning_rate="constant",
        learning_rate_init=1e-3,
        alpha=1e-6,
        ema_decay=0.99,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        tol=1e-4,
        device="auto",
        compile=False,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.n_hidden_layers = n_hidden_layers
        self.n_hidden_units = n_hidden_units
        self.activation = activation
        self.input_order = input_order
        self.dequantize = dequantize
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.ema_decay = ema_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose

    def _build_flow(self, n_features: int, generator: torch.Generator,
                    architecture: dict, n_context_features: int = 0) -> Flow:
        return build_made_mog(n_features, n_context_features=n_context_features,
                   generator=generator, **architecture)
