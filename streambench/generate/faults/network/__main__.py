"""``python -m streambench.generate.faults.network ARGS``: ``streambench proxy ARGS``,
without importing the other commands (how a run starts its proxy: it is ready sooner)."""

import sys

from streambench.cli import main

raise SystemExit(main(["proxy", *sys.argv[1:]],
                      commands=("streambench.generate.faults.network.commands",)))
