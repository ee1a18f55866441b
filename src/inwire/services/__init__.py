"""Inwire's services. Each is independent and talks to the others through contracts."""
