"""Core: apikeys."""
