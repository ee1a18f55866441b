"""Experiments: named groups of runs, unique per organization, archived and restored."""
