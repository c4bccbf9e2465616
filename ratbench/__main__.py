"""``python -m ratbench`` runs the command line."""

from ratbench.cli import main

main()
