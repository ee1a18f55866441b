"""Core: users."""
