"""``python -m resurgo``: the same command as the ``resurgo`` console script."""

from resurgo.cli import main

if __name__ == "__main__":
    main(prog_name="resurgo")
