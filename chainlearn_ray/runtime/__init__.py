"""Ray runtime: the only package that imports ray (hospital and coordinator actors, simulation)."""
