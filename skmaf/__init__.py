"""skmaf: Masked Autoregressive Flows as scikit-learn density estimators."""

from .made_mog import MADEMoGDensity
from .maf import MAFDensity
from .outlier import DensityOutlierDetector
from .realnvp import RealNVPDensity

__version__ = "0.2.0"

__all__ = [
    "DensityOutlierDetector",
    "MADEMoGDensity",
    "MAFDensity",
    "RealNVPDensity",
    "__version__",
]
