"""`python -m semsearch ...` runs the command line, so that `torchrun ... -m semsearch train`
starts one training process a rank."""

from semsearch.cli import main

main()
