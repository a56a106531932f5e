"""The torch layer: flow transforms, base densities and model builders.

Nothing here knows about scikit-learn; the estimators in :mod:`skmaf` use only
the :class:`Flow` protocol (``log_prob``, ``sample``, ``to_base``,
``from_base``, ``freeze_statistics``) and a builder.
"""

from .autoregressive import MaskedAffineAutoregressive
from .base import BaseDistribution, Flow, FlowTransform, InverseNotAvailable, StandardNormal
from .coupling import AffineCoupling, alternating_masks
from .layers import Linear, MaskedLinear, count_connections
from .made import MADE, made_masks, make_order
from .mixture import MADEMoG, mixture_log_prob
from .models import build_made_mog, build_maf, build_realnvp
from .normalization import BatchNorm

__all__ = [
    "MADE",
    "AffineCoupling",
    "Linear",
    "MADEMoG",
    "BaseDistribution",
    "BatchNorm",
    "Flow",
    "FlowTransform",
    "InverseNotAvailable",
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
