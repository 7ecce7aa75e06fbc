"""Experiment settings: the run configuration (the home of defaults), study settings, sweep
grids."""
