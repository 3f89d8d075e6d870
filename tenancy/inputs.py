"""The edge of the offline tooling: a stack's settings and tenants, validated together, as the program reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from components import catalogue, settings
from components.problems import InvalidInput


def load_inputs(project_dir: Path, stack: str, tenants: Optional[Path], parsed_dir: Optional[Path] = None):
    """Settings and the stack's tenants, or InvalidInput listing settings and catalogue problems together.
    `parsed_dir`: where parsed catalogues are kept (catalogue.load), None for nowhere."""
    problems = []
    stack_settings = None
    stacks = settings.known_stacks(project_dir)
    try:
        stack_settings = settings.load_stack(project_dir, stack)
    except InvalidInput as invalid:
        problems.extend(invalid.problems)
    try:
        if stack_settings is not None:
            settings.read_pems(project_dir, stack_settings)
    except InvalidInput as invalid:
        problems.extend(invalid.problems)
    path = tenants or project_dir / (stack_settings.catalogue if stack_settings else "tenants.yaml")
    try:
        cat = catalogue.load(path, stacks=stacks, parsed_dir=parsed_dir)
        if stack_settings is not None:
            tenants_of_stack = cat.for_stack(stack_settings)
            # A bad certificate file is a problem even when the settings and catalogue are fine.
            if not problems:
                return stack_settings, tenants_of_stack
    except InvalidInput as invalid:
        problems.extend(invalid.problems)
    raise InvalidInput(problems)
