"""Metrics: pure functions of the accuracy matrix, and torchmetrics for per-task scores."""
