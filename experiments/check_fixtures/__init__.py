"""Input files of ``experiments/check_benchmark.py`` (not imported by anything)."""
