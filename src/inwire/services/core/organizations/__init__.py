"""Core: organizations."""
