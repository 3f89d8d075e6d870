import sys

from .cli import main

# Guarded: render's worker processes (multiprocessing spawn) import the main module without running it.
if __name__ == "__main__":
    sys.exit(main())
