"""``python -m tlhub``: the same as the ``tlhub`` command (handy under ``torchrun -m``)."""

from tlhub.cli import main

main()
