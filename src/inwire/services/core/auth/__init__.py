"""Core: auth."""
