"""Warnings and errors that skmaf raises."""

from ._device import DeviceWarning
from .flows.base import InverseNotAvailable

__all__ = ["DeviceWarning", "InverseNotAvailable"]
