"""Deployments: model versions served by rollout strategies on local or Kubernetes targets."""
