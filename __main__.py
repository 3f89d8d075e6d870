"""Composition root: read settings and catalogue once, build providers, create the Platform and one Tenant each."""

from pathlib import Path

import pulumi

from components import catalogue, providers, settings
from components.platform import Platform, PlatformArgs
from components.problems import InvalidInput
from components.registry import registry_region
from components.tenant import Tenant, TenantArgs

PROJECT_DIR = Path(__file__).resolve().parent


def _config_map() -> dict:
    # Pulumi exposes no public "all keys" call; the runtime's map is what every Config.get reads, and the
    # settings model needs all of it so a misspelt key fails instead of silently falling back to a default.
    from pulumi.runtime import config as runtime_config

    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def _load() -> tuple[settings.StackSettings, list, "str | None"]:
    stack = pulumi.get_stack()
    config = _config_map()
    secret_keys = frozenset(k for k in config if pulumi.runtime.is_config_secret(k))
    stack_settings = settings.from_config(config, stack=stack, secret_keys=secret_keys)
    cat = catalogue.load(PROJECT_DIR / stack_settings.catalogue, stacks=settings.known_stacks(PROJECT_DIR))
    return stack_settings, cat.for_stack(stack_settings), settings.read_vault_ca_cert(PROJECT_DIR, stack_settings)


try:
    stack_settings, tenants, vault_ca_cert = _load()
except InvalidInput as invalid:
    # RunError is reported without a traceback: the user sees only the list of problems.
    raise pulumi.RunError(f"invalid input, nothing was changed:\n{invalid}") from None

stack_providers = providers.build(stack_settings, {registry_region(stack_settings), *(spec.region for spec, _ in tenants)})
platform = Platform("platform", PlatformArgs(
    stack_settings, stack_providers,
    vault_kubernetes_ca_cert=vault_ca_cert,
    tenants=[spec for spec, _ in tenants],
    registry_password=pulumi.Config(settings.NAMESPACE).get_secret(settings.REGISTRY_PASSWORD_KEY.partition(":")[2])))
for spec, names in tenants:
    Tenant(spec.name, TenantArgs(spec, names, stack_settings, stack_providers, platform))

pulumi.export("tenants", sorted(spec.name for spec, _ in tenants))
pulumi.export("namespaces", {spec.name: names.namespace for spec, names in tenants})
