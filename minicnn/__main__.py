"""`python -m minicnn`: the command line of minicnn/cli/."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
