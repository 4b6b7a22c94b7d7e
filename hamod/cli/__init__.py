"""The ``hamod`` command line."""
