"""Core: integrations."""
