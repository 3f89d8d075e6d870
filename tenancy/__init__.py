"""The offline tooling around the Pulumi program: `python -m tenancy validate|synth|diff|plan|stacks|schema`.

It validates the catalogue and settings the way the program does, runs the program under recording mocks
(`synth`), caches and parallelises those renders (`render`, `render_cache`), compares two of them (`diff`) and says
which stacks a change touches (`plan`). `components/` holds what `pulumi up` runs; this package imports it and never
the other way round.
"""
