"""Core: audit."""
