"""Runs: lifecycle, params, tags, notes, nested runs, metrics, search and compare."""
