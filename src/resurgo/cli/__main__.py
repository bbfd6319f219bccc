"""``python -m resurgo.cli``: the same command as the ``resurgo`` console script."""

from resurgo._main import entry

if __name__ == "__main__":
    entry()
