"""RealNVPDensity: a flow of affine coupling layers."""

from __future__ import annotations

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval

from ._base import BaseFlowDensity
from ._docstrings import fill_docstring
from .flows import Flow, build_realnvp

__all__ = ["RealNVPDensity"]


@fill_docstring
class RealNVPDensity(BaseFlowDensity):
    """Real NVP density estimator (Dinh et al., 2017), as configured in the MAF paper.

    ``n_transforms`` affine coupling layers, each followed by batch norm, map
    the data to standard normal noise. Each layer leaves half of the features
    unchanged and scales and shifts the other half by functions of the first;
    the halves alternate (even and odd feature indices), so every feature is
    transformed. Density and sampling each take one pass.

    Parameters
    ----------
    n_transforms : int, default=5
        Number of coupling layers, the paper's K.
    n_hidden_layers : int, default=1
        Hidden layers of the scale and shift nets, the paper's L.
    n_hidden_units : int, default=100
        Units in each hidden layer, the paper's H.
    batch_norm : bool, default=True
        Batch normalisation after each coupling layer (appendix B of the MAF
        paper): minibatch statistics in training, whole-training-set
        statistics when evaluating.
    %(tail_weight_parameter)s
    %(dequantize_parameter)s
    %(training_parameters)s

    Attributes
    ----------
    %(fitted_attributes)s

    See Also
    --------
    MAFDensity : Masked Autoregressive Flow, of which Real NVP is a special case.
    MADEMoGDensity : A single MADE with mixture-of-Gaussian conditionals.

    Notes
    -----
    Layer k computes ``u_b = (x_b - t(x_a)) * exp(-s(x_a))`` and ``u_a = x_a``,
    with a tanh MLP for ``s`` and a ReLU MLP for ``t`` (the MAF paper's
    appendix D.1), ``log|det| = -sum s``. ``s`` is smoothly bounded to ±7.

    Odd D works as is (the halves differ by one feature). With one feature
    there is nothing to condition on: every other layer is then an
    element-wise affine map with learned constants, and the rest are
    identities, so the model is a (batch-normalised) Gaussian.

    %(far_from_the_data)s
    References
    ----------
    L. Dinh, J. Sohl-Dickstein and S. Bengio, "Density estimation using Real
    NVP", ICLR 2017.

    G. Papamakarios, T. Pavlakou and I. Murray, "Masked Autoregressive Flow for
    Density Estimation", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from skmaf import RealNVPDensity
    >>> rng = np.random.RandomState(0)
    >>> x2 = rng.normal(0, 2, size=500)
    >>> X = np.column_stack([rng.normal(x2 ** 2 / 4, 1), x2])
    >>> model = RealNVPDensity(n_transforms=4, n_hidden_units=16, max_iter=20,
    ...                        random_state=0).fit(X)
    >>> model.score_samples(X[:2]).shape
    (2,)
    >>> np.allclose(model.inverse_transform(model.transform(X)), X)
    True
    """

    _parameter_constraints: dict = {
        **BaseFlowDensity._parameter_constraints,
        "n_transforms": [Interval(Integral, 1, None, closed="left")],
        "n_hidden_layers": [Interval(Integral, 1, None, closed="left")],
        "n_hidden_units": [Interval(Integral, 1, None, closed="left")],
        "batch_norm": ["boolean"],
        "tail_weight": [Interval(Real, 0, 1, closed="left")],
    }

    _architecture_parameters = (
        "n_transforms",
        "n_hidden_layers",
        "n_hidden_units",
        "batch_norm",
        "tail_weight",
    )

    def __init__(
        self,
        n_transforms=5,
        *,
        n_hidden_layers=1,
        n_hidden_units=100,
        batch_norm=True,
        tail_weight=1e-4,
        dequantize="auto",
        max_iter=500,
        batch_size="auto",
        learning_rate="adaptive",
        learning_rate_init="auto",
        alpha=1e-6,
        ema_decay=0.99,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        device="auto",
        compile=False,
        random_state=None,
        verbose=0,
    ):
        self.n_transforms = n_transforms
        self.n_hidden_layers = n_hidden_layers
        self.n_hidden_units = n_hidden_units
        self.batch_norm = batch_norm
        self.tail_weight = tail_weight
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
        return build_realnvp(n_features, n_context_features=n_context_features,
                   generator=generator, **architecture)
