"""``python -m kflow``: the same as the ``kflow`` command."""

from kflow.cli.app import main

if __name__ == "__main__":
    main()
