"""The package version (read by setup.cfg and recorded with every result)."""
__version__ = "0.3.0"
