"""`python -m jaxcnn` is the same as the `jaxcnn` command."""

from jaxcnn._program import run

run()
