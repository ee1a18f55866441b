"""Recipes: declarative, versioned cleaning and transformation steps applied as jobs."""
