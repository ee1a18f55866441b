"""Evaluations: quality and privacy of synthetic data against real data."""
