"""Core: authentication, users, teams, organizations, API keys and integrations."""
