"""skmaf: Masked Autoregressive Flows as scikit-learn density estimators, regressors and
classifiers."""

from .classifier import MAFClassifier
from .made_mog import MADEMoGDensity
from .maf import MAFDensity
from .outlier import DensityOutlierDetector
from .realnvp import RealNVPDensity
from .regressor import MAFRegressor

__version__ = "0.2.0"

__all__ = [
    "DensityOutlierDetector",
    "MADEMoGDensity",
    "MAFClassifier",
    "MAFDensity",
    "MAFRegressor",
    "RealNVPDensity",
    "__version__",
]
