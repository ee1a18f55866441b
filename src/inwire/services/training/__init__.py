"""Model Training: experiment tracking, MLflow-compatible API, training jobs and tuning."""
