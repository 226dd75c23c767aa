"""Scenarios: how a dataset's classes become a stream of tasks."""
