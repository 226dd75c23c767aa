"""Closed-form and convex solvers of the CIL methods (GEM's projection, analytic ridge
learning, optimal transport): pure numerics on tensors, no Lightning."""
