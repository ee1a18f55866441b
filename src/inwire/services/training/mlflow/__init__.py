"""MLflow compatibility: the REST API the stock mlflow client speaks, over our tracking."""
