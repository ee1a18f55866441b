"""Profiles of dataset versions: per-column statistics, correlations and alerts."""
