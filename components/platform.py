"""Platform: the per-stack resources every tenant shares."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from .providers import Providers
from .settings import StackSettings


@dataclass(frozen=True)
class PlatformArgs:
    settings: StackSettings
    providers: Providers


class Platform(pulumi.ComponentResource):
    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tenancy:index:Platform", name, None, opts)
        self.settings = args.settings
        self.register_outputs({})
