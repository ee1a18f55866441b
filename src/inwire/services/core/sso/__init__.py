"""Core: sso."""
