"""Monitoring of deployments: traffic, errors, latency, predictions and input drift."""
