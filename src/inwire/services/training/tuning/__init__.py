"""Hyperparameter tuning: Optuna studies whose trials are child runs."""
