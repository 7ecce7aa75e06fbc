"""Entry point for ``python -m chainlearn_ray``."""

from chainlearn_ray.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
