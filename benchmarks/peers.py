"""The models the benchmark compares, behind one small interface.

Every model is fitted on a :class:`datasets.Split` and reports log-densities in the
data's own units, so all of them are scored on the same scale:

* skmaf's estimators, through their scikit-learn API;
* zuko's ``MAF`` and nflows' ``MaskedAutoregressiveFlow`` (without residual blocks,
  with and without batch norm between layers), trained by :func:`train_torch_flow`,
  a loop with the same optimiser, batch size and early stopping as skmaf's. They
  see data standardised on the training part; the standardisation's log-Jacobian is
  added back to their log-densities;
* the baselines a user would pick instead: ``GaussianMixture`` with the number of
  components, and ``KernelDensity`` with the bandwidth, chosen on the validation part.

The flows share the paper's set-up: K=5 transforms, L=2 hidden layers of H=100 ReLU
units, the order reversed between layers.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from datasets import Split
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity

from skmaf import MAFDensity
from skmaf._training.averaging import WeightAverage

K, L, H = 5, 2, 100


#: skmaf's training defaults, which every flow of the benchmark trains with.
_SKMAF_DEFAULTS = MAFDensity().get_params()


@dataclass(frozen=True)
class Settings:
    """Training settings shared by every flow: ``MAFDensity``'s defaults.

    ``alpha`` (the L2 penalty on connection weights, ``MLPRegressor``'s meaning)
    and ``ema_decay`` (Polyak averaging) are what skmaf's MAF trains with; the
    peers' loop applies the same. skmaf's estimators take them from their own
    defaults.
    """

    max_iter: int = 200
    batch_size: int = _SKMAF_DEFAULTS["batch_size"]
    learning_rate: float = _SKMAF_DEFAULTS["learning_rate_init"]
    alpha: float = _SKMAF_DEFAULTS["alpha"]
    ema_decay: float = _SKMAF_DEFAULTS["ema_decay"]
    n_iter_no_change: int = _SKMAF_DEFAULTS["n_iter_no_change"]
    tol: float = _SKMAF_DEFAULTS["tol"]
    seed: int = 0


class Model:
    """A fitted density: ``fit`` then ``log_density`` and ``sample``, in data units.

    ``n_iter`` (epochs) and ``rows_trained`` (rows per epoch times epochs) are set
    by ``fit`` for the flows, which is what training throughput is computed from.
    """

    n_iter = None
    rows_trained = None

    def fit(self, split: Split) -> Model:
        raise NotImplementedError

    def log_density(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def sample(self, n: int) -> np.ndarray:
        raise NotImplementedError


# --------------------------------------------------------------------- skmaf
class SkmafModel(Model):
    """A skmaf estimator, fitted on train + validation with the validation share held out."""

    def __init__(self, make_estimator, settings: Settings):
        self.make_estimator = make_estimator
        self.settings = settings

    def fit(self, split):
        X = np.vstack([split.train, split.validation])
        s = self.settings
        self.estimator = self.make_estimator(
            max_iter=s.max_iter, batch_size=s.batch_size, learning_rate_init=s.learning_rate,
            n_iter_no_change=s.n_iter_no_change, tol=s.tol, random_state=s.seed,
            early_stopping=True, validation_fraction=len(split.validation) / len(X),
        ).fit(X)
        self.n_iter = self.estimator.n_iter_
        self.rows_trained = self.n_iter * len(split.train)
        return self

    def log_density(self, X):
        return self.estimator.score_samples(X)

    def sample(self, n):
        return self.estimator.sample(n, random_state=0)


# ----------------------------------------------------------------- torch peers
class Standardization:
    """Standardise on the training part; carries the map's log-Jacobian."""

    def __init__(self, train: np.ndarray):
        self.mean = train.mean(axis=0)
        self.scale = train.std(axis=0)
        self.scale[self.scale == 0] = 1.0
        self.log_jacobian = -np.log(self.scale).sum()

    def forward(self, X) -> torch.Tensor:
        return torch.as_tensor((X - self.mean) / self.scale, dtype=torch.float32)

    def inverse(self, Z: torch.Tensor) -> np.ndarray:
        return Z.double().numpy() * self.scale + self.mean


def train_torch_flow(module: torch.nn.Module, log_prob, train: torch.Tensor,
                     validation: torch.Tensor, settings: Settings) -> int:
    """Adam + early stopping on validation, restoring the best epoch; returns the epochs run.

    The loop skmaf's estimators run: shuffled near-equal minibatches, fused Adam
    with the L2 penalty ``alpha`` on the connection weights (``torch.nn.Linear``
    weights, masked ones included), the moving average of the weights (and of
    floating-point buffers such as batch norm's running statistics) validated
    and kept, validation log-likelihood each epoch, patience ``n_iter_no_change``.
    """
    generator = torch.Generator().manual_seed(settings.seed)
    weights = {id(layer.weight) for layer in module.modules()
               if isinstance(layer, torch.nn.Linear)}
    groups = [
        {"params": [p for p in module.parameters() if id(p) in weights],
         "weight_decay": settings.alpha / settings.batch_size},
        {"params": [p for p in module.parameters() if id(p) not in weights],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.Adam([group for group in groups if group["params"]],
                                 lr=settings.learning_rate, fused=True)
    average = None
    if settings.ema_decay > 0:
        average = WeightAverage(
            list(module.parameters())
            + [buffer for buffer in module.buffers() if buffer.is_floating_point()],
            settings.ema_decay)
    n_batches = max(len(train) // settings.batch_size, 1)
    best, best_state, no_improvement = -math.inf, None, 0
    for epoch in range(1, settings.max_iter + 1):  # noqa: B007 (returned after the loop)
        module.train()
        for index in torch.randperm(len(train), generator=generator).tensor_split(n_batches):
            loss = -log_prob(train[index]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update()
        module.eval()
        with average.applied() if average else contextlib.nullcontext():
            with torch.no_grad():
                score = log_prob(validation).double().mean().item()
            if score > best:
                best_state = copy.deepcopy(module.state_dict())
        if not math.isfinite(score):
            break
        no_improvement = 0 if score > best + settings.tol else no_improvement + 1
        best = max(best, score)
        if no_improvement >= settings.n_iter_no_change:
            break
    module.load_state_dict(best_state)
    return epoch


class TorchFlowModel(Model):
    """A peer library's flow: ``build(n_features)`` gives the module, ``log_prob``
    and ``sample`` call the library's own methods on it."""

    def __init__(self, build, log_prob, sample, settings: Settings):
        self.build, self._log_prob, self._sample = build, log_prob, sample
        self.settings = settings

    def fit(self, split):
        torch.manual_seed(self.settings.seed)
        self.standardization = Standardization(split.train)
        self.module = self.build(split.n_features)
        train = self.standardization.forward(split.train)
        validation = self.standardization.forward(split.validation)
        log_prob = lambda x: self._log_prob(self.module, x)  # noqa: E731
        self.n_iter = train_torch_flow(self.module, log_prob, train, validation, self.settings)
        self.rows_trained = self.n_iter * len(train)
        self.module.eval()
        return self

    @torch.no_grad()
    def log_density(self, X):
        log_prob = self._log_prob(self.module, self.standardization.forward(X))
        return log_prob.double().numpy() + self.standardization.log_jacobian

    @torch.no_grad()
    def sample(self, n):
        return self.standardization.inverse(self._sample(self.module, n))


def zuko_maf(n_features: int):
    import zuko

    # zuko orders the features ascending, then descending, alternately: reversed
    # between layers, as in skmaf and nflows.
    return zuko.flows.MAF(n_features, transforms=K, hidden_features=(H,) * L,
                          activation=torch.nn.ReLU)


def nflows_maf(n_features: int, batch_norm: bool):
    from nflows.flows import MaskedAutoregressiveFlow

    # Without residual blocks nflows' MADE has an input layer plus one hidden
    # layer per block: num_blocks_per_layer = L - 1 gives L hidden layers.
    return MaskedAutoregressiveFlow(
        n_features, hidden_features=H, num_layers=K, num_blocks_per_layer=L - 1,
        use_residual_blocks=False, batch_norm_between_layers=batch_norm,
    )


def zuko_model(settings):
    return TorchFlowModel(zuko_maf, lambda flow, x: flow().log_prob(x),
                          lambda flow, n: flow().sample((n,)), settings)


def nflows_model(settings, batch_norm):
    return TorchFlowModel(lambda d: nflows_maf(d, batch_norm),
                          lambda flow, x: flow.log_prob(x),
                          lambda flow, n: flow.sample(n), settings)


# -------------------------------------------------------------------- baselines
def _choose_on_validation(candidates, fit_and_score, grow):
    """Try ``candidates``; while the best is the largest one, extend with ``grow``.

    Returns the best fitted model. Growing keeps the grid wide enough that the
    chosen value is never at its upper edge, as the benchmark promises.
    """
    scores = {}
    candidates = list(candidates)
    while True:
        for value in candidates:
            if value not in scores:
                scores[value] = fit_and_score(value)
        best = max(scores, key=lambda value: scores[value][0])
        if best != max(scores) or grow(best) is None:
            return scores[best][1], best
        candidates.append(grow(best))


class GaussianMixtureModel(Model):
    """Full-covariance ``GaussianMixture``, its components chosen on validation
    from 1, 2, 5, 10, 20, 50, doubling while the largest is the best."""

    def __init__(self, settings: Settings, max_components: int = 400):
        self.settings = settings
        self.max_components = max_components

    def fit(self, split):
        def fit_and_score(n_components):
            if n_components > len(split.train):
                return -math.inf, None
            model = GaussianMixture(n_components, covariance_type="full", reg_covar=1e-6,
                                    random_state=self.settings.seed).fit(split.train)
            return model.score(split.validation), model

        def grow(n):
            return 2 * n if 2 * n <= self.max_components else None

        self.mixture, self.n_components = _choose_on_validation(
            [1, 2, 5, 10, 20, 50], fit_and_score, grow)
        return self

    def log_density(self, X):
        return self.mixture.score_samples(X)

    def sample(self, n):
        return self.mixture.sample(n)[0]


class KernelDensityModel(Model):
    """Gaussian ``KernelDensity`` on standardised data; bandwidth chosen on validation."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def fit(self, split):
        self.standardization = Standardization(split.train)
        train = self.standardization.forward(split.train).double().numpy()
        validation = self.standardization.forward(split.validation).double().numpy()

        def fit_and_score(bandwidth):
            model = KernelDensity(bandwidth=bandwidth).fit(train)
            return model.score_samples(validation).mean(), model

        # Scott's rule of thumb for standardised data, then a factor-of-~1.4 grid around it.
        scott = len(train) ** (-1.0 / (split.n_features + 4))
        grid = [scott * 2.0 ** (k / 2) for k in range(-8, 3)]
        self.kde, self.bandwidth = _choose_on_validation(
            grid, fit_and_score, lambda b: b * 2.0**0.5 if b < 100 else None)
        return self

    def log_density(self, X):
        Z = self.standardization.forward(X).double().numpy()
        return self.kde.score_samples(Z) + self.standardization.log_jacobian

    def sample(self, n):
        return self.standardization.inverse(
            torch.as_tensor(self.kde.sample(n, random_state=self.settings.seed)))


# --------------------------------------------------------------------- registry
def skmaf_model(name: str, **architecture):
    """A skmaf estimator class by name, at ``architecture``; training settings come later."""
    def make(settings):
        import skmaf

        estimator = getattr(skmaf, name)
        return SkmafModel(lambda **training: estimator(**architecture, **training), settings)
    return make


MAF = dict(n_transforms=K, n_hidden_layers=L, n_hidden_units=H)
MODELS = {
    "skmaf MAF": skmaf_model("MAFDensity", **MAF, batch_norm=False),
    "skmaf MAF+BN": skmaf_model("MAFDensity", **MAF, batch_norm=True),
    "zuko MAF": zuko_model,
    "nflows MAF": lambda s: nflows_model(s, batch_norm=False),
    "nflows MAF+BN": lambda s: nflows_model(s, batch_norm=True),
    "GaussianMixture": GaussianMixtureModel,
    "KernelDensity": KernelDensityModel,
    # The rest of skmaf's family at the same L and H (not run by default).
    "skmaf MAF MoG": skmaf_model("MAFDensity", **MAF, n_components=10),
    "skmaf MADE MoG": skmaf_model("MADEMoGDensity", n_hidden_layers=L, n_hidden_units=H,
                                  n_components=10),
    "skmaf RealNVP": skmaf_model("RealNVPDensity", **MAF),
}
#: What ``run.py`` compares unless told otherwise: skmaf's MAF against the peers.
DEFAULT_MODELS = list(MODELS)[:7]


def timed(function, *args):
    """``(result, seconds)`` of one call."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def best_time(function, *args, repeat: int = 3) -> float:
    """Seconds of the fastest of ``repeat`` calls: the least disturbed by other work."""
    return min(timed(function, *args)[1] for _ in range(repeat))
