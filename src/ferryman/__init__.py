"""Ferryman: one API in front of a fleet of GPU workers."""

__version__ = "0.1.0"
__all__ = ["__version__"]
