"""Federated and local learning methods of the study, one small class each."""
