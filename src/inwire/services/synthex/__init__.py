"""Synthex: datasets, profiles, recipes, synthetic data generation and its evaluation."""
