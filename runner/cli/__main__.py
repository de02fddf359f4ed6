"""``python -m runner.cli``: the ``flow`` command (how ``flow run-local --kafka`` starts
its streamlet processes, with the same interpreter)."""

from runner.cli.main import main

main()
