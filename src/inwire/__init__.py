"""Inwire: an open-source, self-hostable ML lifecycle platform."""

__version__ = "0.1.0"
