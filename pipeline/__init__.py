"""DVC stages: one short script per stage, each run as `python -m pipeline.<stage>`."""
