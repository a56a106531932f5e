"""Warnings and errors that skmaf raises."""

from ._device import DeviceWarning
from .flows.base import InverseNotAvailable

__all__ = ["DegenerateDataWarning", "DeviceWarning", "InverseNotAvailable"]


class DegenerateDataWarning(UserWarning):
    """Training data on which a continuous density is degenerate.

    Raised by ``fit`` for constant columns, and for integer-valued or heavily
    repeated ones, whose log-likelihood rewards spikes on the repeated values
    rather than the fit. A subclass of :class:`UserWarning`, so that it can be
    filtered on its own, e.g. when the data are known to be discrete::

        warnings.filterwarnings("ignore", category=DegenerateDataWarning)
    """
