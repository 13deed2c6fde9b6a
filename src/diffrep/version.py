"""The package version (its own module, so that nothing inside the package imports ``diffrep``'s ``__init__``)."""

__version__ = "0.1.0"
