"""``python -m flowforge.cli``: the ``flowforge`` command."""

from . import main

main()
