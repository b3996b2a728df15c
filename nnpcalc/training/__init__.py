"""Training: reference data, fitting, export. Never imported by the runtime.

This first version is a compact plain-torch trainer used to produce the shipped default
model; the Lightning-based trainer with composable losses and `nnp train` builds on it.
"""
