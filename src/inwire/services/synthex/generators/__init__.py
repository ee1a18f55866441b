"""Generators: synthetic data methods, constraints and the generation job."""
