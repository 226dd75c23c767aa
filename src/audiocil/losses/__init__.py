"""Losses and regularisers of the CIL methods, as pure functions of tensors."""
