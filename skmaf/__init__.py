"""skmaf: Masked Autoregressive Flows as scikit-learn density estimators."""

from .maf import MAFDensity

__version__ = "0.1.0"

__all__ = ["MAFDensity", "__version__"]
