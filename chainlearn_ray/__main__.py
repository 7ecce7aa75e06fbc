"""Entry point for ``python -m chainlearn_ray``."""

from chainlearn_ray.cli import entry

if __name__ == "__main__":
    entry()
