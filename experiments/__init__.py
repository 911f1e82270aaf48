"""Experiments and benchmarks built on jaxcnn (not part of the installed package)."""
