"""Blockchain layer: contract artifact, backends and the typed FLCoordinator client."""
