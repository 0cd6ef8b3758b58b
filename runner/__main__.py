"""``python -m runner`` is the ``runyard`` command."""
from runner.cli import main

main(prog_name="runyard")
