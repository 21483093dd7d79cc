"""Text-to-image backends: the Backend protocol, a factory by name, and the offline weight check."""

from spliter.backends.base import Backend, WeightsNotFound, make_backend, missing_weights

__all__ = ["Backend", "WeightsNotFound", "make_backend", "missing_weights"]
