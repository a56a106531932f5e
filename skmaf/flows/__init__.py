"""The torch layer: flow transforms, base densities and model builders.

The reference model, in plain autograd: nothing here knows about scikit-learn
or imports :mod:`skmaf._accelerated`, each module enforces its own invariants
(a masked layer applies its mask), and each formula is written once. The
estimators in :mod:`skmaf` use only the :class:`Flow` protocol (``log_prob``,
``sample``, ``to_base``, ``from_base``, ``freeze_statistics``, and the base's
``to_standard_normal`` / ``from_standard_normal``, each with an optional
``context``) and a builder.
"""

from .autoregressive import MaskedAffineAutoregressive
from .base import BaseDistribution, Flow, FlowTransform, InverseNotAvailable, StandardNormal
from .coupling import AffineCoupling, alternating_masks
from .defensive import DefensiveNormal
from .layers import Linear, MaskedLinear, count_connections
from .made import MADE, made_masks, make_order
from .mixture import MADEMoG, mixture_log_prob
from .models import build_made_mog, build_maf, build_realnvp
from .normalization import BatchNorm

__all__ = [
    "MADE",
    "AffineCoupling",
    "BaseDistribution",
    "BatchNorm",
    "DefensiveNormal",
    "Flow",
    "FlowTransform",
    "InverseNotAvailable",
    "Linear",
    "MADEMoG",
    "MaskedAffineAutoregressive",
    "MaskedLinear",
    "StandardNormal",
    "alternating_masks",
    "build_made_mog",
    "build_maf",
    "build_realnvp",
    "count_connections",
    "made_masks",
    "make_order",
    "mixture_log_prob",
]
