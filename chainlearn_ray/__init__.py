"""chainlearn_ray: capacity-aware federated ensemble learning of simulated hospitals on Ray."""

__version__ = "0.1.0"

__all__ = ["__version__"]
