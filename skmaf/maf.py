"""MAFDensity: the Masked Autoregressive Flow as a scikit-learn density estimator."""

from __future__ import annotations

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseFlowDensity
from ._docstrings import fill_docstring
from .flows import Flow, build_maf

__all__ = ["MAFDensity"]


@fill_docstring
class MAFDensity(BaseFlowDensity):
    """Masked Autoregressive Flow density estimator (Papamakarios et al., 2017).

    A stack of ``n_transforms`` Gaussian MADEs, each followed by batch
    normalisation, maps the data to standard normal noise (with a small
    weight ``tail_weight`` on a wider normal: see that parameter).
    Log-densities take one parallel pass; sampling takes D sequential passes
    per MADE. With
    ``n_components > 1`` the noise density is a MADE with mixture-of-Gaussian
    conditionals instead: the paper's MAF MoG.

    The data are standardised internally and the standardisation's Jacobian
    is part of every log-density, so :meth:`score_samples` is the log-density
    of the data in the units they were given in.

    Parameters
    ----------
    %(maf_architecture)s
    %(dequantize_parameter)s
    %(training_parameters)s

    Attributes
    ----------
    %(fitted_attributes)s

    See Also
    --------
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.
    MADEMoGDensity : A single MADE with mixture-of-Gaussian conditionals.
    RealNVPDensity : Real NVP, a flow of affine coupling layers.

    Notes
    -----
    Each MADE computes ``u_i = (x_i - mu_i) * exp(-alpha_i)`` where ``mu_i`` and
    ``alpha_i`` depend on the inputs before ``i`` in its order, so
    ``log p(x) = log p_base(u) + sum_k log|det J_k|`` is exact, ``p_base``
    the defensive mixture ``(1 - w) N(0, I) + w N(0, 10**2 I)`` (N(0, I) at
    ``tail_weight=0``). ``alpha`` is smoothly bounded to ``±7`` per MADE to
    keep ``exp(alpha)`` finite. The MADE outputs ``alpha_i`` and the shift
    ``beta_i = -mu_i * exp(-alpha_i)``, so ``u_i = x_i * exp(-alpha_i) +
    beta_i``: the same flow, parametrised as in
    nflows and zuko, which trains to a better held-out likelihood than ``mu`` as the
    output (4 nats a row on digits; ``benchmarks/README.md``).

    %(far_from_the_data)s
    Training runs in float32. :meth:`score_samples` evaluates the flow in
    float32 too (twice as fast as float64) and the base density in float64;
    on the CPU a row scores the same, to the bit, alone as inside any batch.
    The fitted model is kept in float64, for :meth:`transform`,
    :meth:`inverse_transform` and :meth:`sample`, which round-trip to 1e-10.
    A model fitted on a GPU unpickles on a CPU-only machine (with a
    :class:`skmaf.exceptions.DeviceWarning`).

    Training defaults: the paper trained with a constant step (1e-4 in its
    code) on minibatches of 100 rows; here the step scales with the batch,
    which grows with the data, and is divided by 10 at each of the first two
    plateaus of ``n_iter_no_change`` epochs (``learning_rate="adaptive"``),
    to reach a good model in fewer epochs. ``learning_rate`` says how to
    train as the paper did.

    ``n_components=10`` (MAF MoG) fits multimodal conditionals that the
    Gaussian base cannot, and scored higher than the default on most real
    tables tried; it costs a longer fit. ``benchmarks/README.md`` compares
    the two.

    References
    ----------
    G. Papamakarios, T. Pavlakou and I. Murray, "Masked Autoregressive Flow for
    Density Estimation", NeurIPS 2017.

    M. Germain, K. Gregor, I. Murray and H. Larochelle, "MADE: Masked
    Autoencoder for Distribution Estimation", ICML 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from skmaf import MAFDensity
    >>> rng = np.random.RandomState(0)
    >>> x2 = rng.normal(0, 2, size=500)
    >>> X = np.column_stack([rng.normal(x2 ** 2 / 4, 1), x2])
    >>> model = MAFDensity(n_transforms=2, n_hidden_units=16, max_iter=20,
    ...                    random_state=0).fit(X)
    >>> model.score_samples(X[:2]).shape
    (2,)
    >>> model.sample(3, random_state=0).shape
    (3, 2)
    """

    _parameter_constraints: dict = {
        **BaseFlowDensity._parameter_constraints,
        "n_transforms": [Interval(Integral, 1, None, closed="left")],
        "n_hidden_layers": [Interval(Integral, 1, None, closed="left")],
        "n_hidden_units": [Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"relu", "tanh"})],
        "batch_norm": ["boolean"],
        "input_order": [StrOptions({"sequential", "reverse", "random"}), "array-like"],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "tail_weight": [Interval(Real, 0, 1, closed="left")],
    }

    _architecture_parameters = (
        "n_transforms",
        "n_hidden_layers",
        "n_hidden_units",
        "activation",
        "batch_norm",
        "input_order",
        "n_components",
        "tail_weight",
    )

    def __init__(
        self,
        n_transforms=5,
        *,
        n_hidden_layers=1,
        n_hidden_units=100,
        activation="relu",
        batch_norm=True,
        input_order="sequential",
        n_components=1,
        tail_weight=1e-4,
        dequantize="auto",
        max_iter=500,
        batch_size="auto",
        learning_rate="adaptive",
        learning_rate_init="auto",
        alpha=1.0,
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
        self.activation = activation
        self.batch_norm = batch_norm
        self.input_order = input_order
        self.n_components = n_components
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
        return build_maf(n_features, n_context_features=n_context_features,
                   generator=generator, **architecture)
