"""`python -m semsearch.cli` runs the command line, as the `semsearch` script does."""

from semsearch.cli import main

main()
