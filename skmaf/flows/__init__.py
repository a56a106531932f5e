"""The torch layer: flow transforms, base densities and model builders.

Nothing here knows about scikit-learn; the estimators in :mod:`skmaf` use only
the :class:`Flow` protocol (``log_prob``, ``sample``, ``to_base``,
``from_base``, ``freeze_statistics``) and a builder.
"""

from .autoregressive import MaskedAffineAutoregressive
from .base import BaseDistribution, Flow, FlowTransform, InverseNotAvailable, StandardNormal
from .made import MADE, MaskedLinear, made_masks, make_order
from .models import build_maf
from .normalization import BatchNorm

__all__ = [
    "MADE",
    "BaseDistribution",
    "BatchNorm",
    "Flow",
    "FlowTransform",
    "InverseNotAvailable",
    "MaskedAffineAutoregressive",
    "MaskedLinear",
    "StandardNormal",
    "build_maf",
    "made_masks",
    "make_order",
]
