"""Composition root: read settings and catalogue once, build providers, create the Platform and one Tenant each.

With `tenancy:shards` > 1 the environment's stack (`dev`) holds the Platform alone and each shard stack
(`dev-shard-<i>`, components/sharding.py) holds its tenants and reads the platform through a StackReference.
"""

from pathlib import Path

import pulumi

from components import catalogue, providers, settings, sharding
from components.platform import Platform, PlatformArgs
from components.platform_ref import PlatformReference, PlatformReferenceArgs, export_platform, platform_stack_name
from components.problems import InvalidInput
from components.registry import registry_region
from components.tenant import Tenant, TenantArgs

PROJECT_DIR = Path(__file__).resolve().parent


def _config_map() -> dict:
    # Pulumi exposes no public "all keys" call; the runtime's map is what every Config.get reads, and the
    # settings model needs all of it so a misspelt key fails instead of silently falling back to a default.
    from pulumi.runtime import config as runtime_config

    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def _load() -> tuple[settings.StackSettings, list, list, settings.StackPems]:
    """Settings, the environment's tenants (the platform serves them all), this stack's tenants, the PEMs."""
    stack = pulumi.get_stack()
    environment, shard = sharding.parse_stack(stack)
    config = _config_map()
    secret_keys = frozenset(k for k in config if pulumi.runtime.is_config_secret(k))
    if shard is not None:
        # Settings are written once, in the environment's file; a shard's own config adds nothing but the
        # catalogue the offline tooling injects (`--tenants`). Its secrets reach it as the platform's secret outputs.
        settings.check_shard_config(stack, config, allowed=frozenset({f"{settings.NAMESPACE}:catalogue"}))
        env_config, env_secret_keys = settings.read_stack_file(PROJECT_DIR, environment)
        config, secret_keys = {**env_config, **config}, env_secret_keys | secret_keys
    stack_settings = settings.from_config(config, stack=environment, secret_keys=secret_keys)
    settings.check_shard(stack_settings, stack)
    # Catalogue-wide rules (unique names, collisions) see the whole catalogue in every stack; then each stack
    # keeps the tenants assigned to it.
    cat = catalogue.load(PROJECT_DIR / stack_settings.catalogue, stacks=settings.known_stacks(PROJECT_DIR))
    environment_tenants = cat.for_stack(stack_settings)
    tenants = [(spec, names) for spec, names in environment_tenants
               if sharding.stack_of(environment, spec.name, stack_settings.shards) == stack]
    return stack_settings, environment_tenants, tenants, settings.read_pems(PROJECT_DIR, stack_settings)


try:
    stack_settings, environment_tenants, tenants, pems = _load()
except InvalidInput as invalid:
    # RunError is reported without a traceback: the user sees only the list of problems.
    raise pulumi.RunError(f"invalid input, nothing was changed:\n{invalid}") from None

holds_platform = pulumi.get_stack() == stack_settings.environment
# The registry's region needs a provider only where tenancy creates the Keyspaces table (and the generator's
# SigV4 role); with `tenancy:registry.endpoint` the "region" names the endpoint's data centre.
stack_providers = providers.build(
    stack_settings, {*([registry_region(stack_settings)] if holds_platform and stack_settings.registry.in_keyspaces
                       else []), *(spec.region for spec, _ in tenants)})
if holds_platform:
    platform = Platform("platform", PlatformArgs(
        stack_settings, stack_providers,
        vault_kubernetes_ca_cert=pems.vault_kubernetes_ca, vault_server_ca_cert=pems.vault_server_ca,
        registry_ca_cert=pems.registry_ca, tenants=environment_tenants,
        registry_password=pulumi.Config(settings.NAMESPACE).get_secret(settings.REGISTRY_PASSWORD_KEY.partition(":")[2])))
    if stack_settings.shards > 1:
        export_platform(platform)
else:
    platform = PlatformReference("platform", PlatformReferenceArgs(
        stack_settings, platform_stack_name(stack_settings.environment), vault_server_ca_cert=pems.vault_server_ca,
        registry_ca_cert=pems.registry_ca))
for spec, names in tenants:
    Tenant(spec.name, TenantArgs(spec, names, stack_settings, stack_providers, platform))

pulumi.export("tenants", sorted(spec.name for spec, _ in tenants))
pulumi.export("namespaces", {spec.name: names.namespace for spec, names in tenants})
