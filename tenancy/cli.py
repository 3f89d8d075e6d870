"""`python -m tenancy validate|synth|diff|plan|stacks|schema`: the offline tooling around the Pulumi program.

Input problems print one per line and exit 1 with no traceback; nothing is rendered from invalid input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from components import catalogue, settings
from components.problems import InvalidInput

from .inputs import load_inputs
from .render_cache import MergeRefused

PROJECT_DIR = Path(__file__).resolve().parent.parent
SCHEMA_FILE = "tenants.schema.json"


def _validate(args: argparse.Namespace) -> int:
    stack_settings, tenants = load_inputs(args.project, args.stack, args.tenants)
    print(f"{args.stack}: {len(tenants)} tenant(s) valid: {', '.join(s.name for s, _ in tenants) or '-'}")
    return 0


def _render_options(args: argparse.Namespace) -> dict:
    """render's cache folder (None with --no-cache) and process count."""
    from . import render, render_cache

    return {
        "cache_dir": None if args.no_cache else args.project / render_cache.CACHE_DIR,
        "jobs": args.jobs or render.default_jobs(),
    }


def _synth(args: argparse.Namespace) -> int:
    from . import environment, render_cache, synth

    stack_settings, tenants = load_inputs(
        args.project, args.stack, args.tenants, None if args.no_cache else args.project / render_cache.PARSED_DIR
    )
    results = environment.render(
        args.project,
        args.stack,
        args.tenants,
        progress=lambda name: synth.Progress(name, len(tenants)),
        inputs=(stack_settings, tenants),
        **_render_options(args),
    )
    # An environment's stack renders with all its shards (written beside it, e.g. out/dev-shard-0); a shard alone.
    shown = results if args.stack == stack_settings.environment else {args.stack: results[args.stack]}
    lifecycles = {spec.name: spec.lifecycle for spec, _ in tenants}
    for name, result in shown.items():
        out = None if args.out is None else args.out if name == args.stack else args.out.parent / name
        if out:
            synth.write(result, out)
        if len(shown) > 1:
            print(f"== stack {name}")
        print(synth.format_table(synth.tenant_summary(result, lifecycles)))
        print(
            f"\n{len(result.resources)} resources registered for stack {name}" + (f"; written to {out}" if out else "")
        )
    return 0


def _diff(args: argparse.Namespace) -> int:
    """Exit 0 when the renders match, 2 when they differ, 3 when data would be deleted or replaced (CI asks for
    an extra approval), 1 on invalid input."""
    from . import diff

    if (args.to is None) == (args.base is None):
        print("diff needs exactly one of --to <stack> or --base <git-rev>", file=sys.stderr)
        return 1
    if args.base is not None and args.tenants is not None:
        # Both sides of --base are the catalogue the stack names (tenancy:catalogue), at the revision and in the
        # working tree; another file has no revision to compare with.
        print(
            "diff --base compares the stack's own catalogue (tenancy:catalogue) at the revision with the working "
            "tree; --tenants works with --to, or with synth and validate",
            file=sys.stderr,
        )
        return 1
    if args.to is not None:
        result = diff.between_stacks(
            args.project, args.stack, args.to, args.tenants, progress=True, **_render_options(args)
        )
    else:
        result = diff.against_base(args.project, args.stack, args.base, progress=True, **_render_options(args))
    if args.format == "markdown":
        print(diff.format_markdown(result, args.max_chars))
    else:
        print(diff.format_json(result) if args.format == "json" else diff.format_text(result))
    return diff.exit_code(result)


def _stacks(args: argparse.Namespace) -> int:
    """Every stack of an environment in update order, in plan's format (for CI when there is no base to plan)."""
    from components import sharding

    from . import plan

    stack_settings = settings.load_stack(args.project, args.stack)
    every = [
        plan.StackPlan(name, "platform" if name == stack_settings.environment else "shard", ["every stack"])
        for name in sharding.stacks_of(stack_settings.environment, stack_settings.shards)
    ]
    if args.format == "json":
        print(plan.format_json(args.stack, None, every))
    else:
        print(
            f"{stack_settings.environment}: {len(every)} stack(s), in update order (the platform first: shards "
            f"read its outputs)"
        )
        print("\n".join(f"  {entry.stack} ({entry.role})" for entry in every))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from . import plan

    planned = plan.plan(args.project, args.stack, args.base)
    print(
        plan.format_json(args.stack, args.base, planned)
        if args.format == "json"
        else plan.format_text(args.stack, args.base, planned)
    )
    return 0


def _schema(args: argparse.Namespace) -> int:
    text = json.dumps(catalogue.json_schema(settings.known_stacks(args.project)), indent=2) + "\n"
    if args.check:
        current = (args.project / SCHEMA_FILE).read_text() if (args.project / SCHEMA_FILE).exists() else ""
        if current != text:
            print(f"{SCHEMA_FILE} is out of date; run `python -m tenancy schema`", file=sys.stderr)
            return 1
        print(f"{SCHEMA_FILE} is current")
        return 0
    (args.project / SCHEMA_FILE).write_text(text)
    print(f"wrote {SCHEMA_FILE}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m tenancy", description=__doc__)
    root.add_argument("--project", type=Path, default=PROJECT_DIR, help=argparse.SUPPRESS)
    commands = root.add_subparsers(dest="command", required=True)

    def stack_command(name: str, help_text: str):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--stack", required=True, help="stack name (Pulumi.<stack>.yaml)")
        command.add_argument("--tenants", type=Path, help="catalogue file (default: the stack's, tenants.yaml)")
        return command

    def render_flags(command) -> None:
        command.add_argument("--jobs", type=int, help="processes to render with (default: every core)")
        command.add_argument(
            "--no-cache",
            action="store_true",
            help="render every tenant (default: reuse .cache/render/ for unchanged tenants)",
        )

    stack_command("validate", "check the catalogue and stack config").set_defaults(run=_validate)
    synth = stack_command("synth", "render every resource of a stack offline under Pulumi mocks")
    synth.add_argument("--out", type=Path, help="write resources.json, outputs.json and manifests/ here")
    render_flags(synth)
    synth.set_defaults(run=_synth)
    diff = stack_command(
        "diff", "compare two offline renders per tenant (exit 0 same, 2 different, 3 destructive, 1 invalid input)"
    )
    diff.add_argument("--to", help="the other stack, e.g. staging (names of the two stacks are normalised)")
    diff.add_argument("--base", help="git revision whose catalogue and stack config to compare with the working tree")
    diff.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="markdown: a pull-request comment (destructive changes first, a section per tenant)",
    )
    diff.add_argument(
        "--max-chars",
        type=int,
        default=65_536,
        help="markdown only: leave out resource lines beyond this size (default: 65536, GitHub's limit for a comment)",
    )
    render_flags(diff)
    diff.set_defaults(run=_diff)
    plan = commands.add_parser(
        "plan",
        help="the stacks of an environment a change since --base touches, and why "
        "(platform first, then the affected shards)",
    )
    plan.add_argument("--stack", required=True, help="environment (its platform stack and shards are planned)")
    plan.add_argument("--base", required=True, help="git revision to compare the working tree with")
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.set_defaults(run=_plan)
    stacks = commands.add_parser("stacks", help="every stack of an environment: its platform stack, then its shards")
    stacks.add_argument("--stack", required=True, help="environment")
    stacks.add_argument("--format", choices=("text", "json"), default="text")
    stacks.set_defaults(run=_stacks)
    schema = commands.add_parser("schema", help=f"write {SCHEMA_FILE} (or --check that it is current)")
    schema.add_argument("--check", action="store_true")
    schema.set_defaults(run=_schema)
    return root


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except InvalidInput as invalid:
        for problem in invalid.problems:
            print(problem, file=sys.stderr)
        print(f"{len(invalid.problems)} problem(s); nothing was rendered.", file=sys.stderr)
        return 1
    except MergeRefused as refused:
        # Renders of one program that disagree: a defect of the program or the tooling, not of the input.
        print(f"render refused: {refused}; please report it with the command that printed this", file=sys.stderr)
        return 1
