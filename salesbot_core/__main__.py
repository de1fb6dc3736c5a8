"""``python -m salesbot_core`` runs the ``salesbot`` command."""

from .cli import main

main()
