"""`python -m components` still works for scripts and pipelines written before the tooling moved to `tenancy/`;
it says where the tooling went and runs it."""

import sys

if __name__ == "__main__":
    print("note: the offline tooling moved to its own package: use `python -m tenancy ...`", file=sys.stderr)
    from tenancy.cli import main

    sys.exit(main())
