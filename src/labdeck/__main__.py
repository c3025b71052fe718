"""``python -m labdeck`` is the ``labdeck`` command."""

from labdeck.cli import main

main()
