"""The package version: a leaf module, so anything may import it without a circle."""

__version__ = "0.1.0"
