"""The ``inwire`` command line."""
