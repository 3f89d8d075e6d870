import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a folder (`python path/to/tenancy ...`, from any directory): the project that holds it is where
    # `tenancy` and `components` are imported from.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tenancy.cli import main
else:
    from .cli import main

# Guarded: render's worker processes (multiprocessing spawn) import the main module without running it.
if __name__ == "__main__":
    sys.exit(main())
