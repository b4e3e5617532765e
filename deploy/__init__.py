"""Deployment helpers: service launchers for tests and development, compose and Kubernetes files."""
