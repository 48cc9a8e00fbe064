"""`python -m ferryman` runs the CLI."""

from ferryman.cli import main

main()
