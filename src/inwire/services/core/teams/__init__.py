"""Core: teams."""
