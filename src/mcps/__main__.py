"""``python -m mcps``: the same as the ``mcps`` command."""

from mcps.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
