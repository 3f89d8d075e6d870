"""Tenant storage on AWS: the artifact bucket, its hardening, the optional KMS key, and the identity Argo uses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from . import iam_policies, naming, sdk
from .catalogue import TenantSpec
from .naming import TenantNames
from .providers import Providers, child
from .settings import StackSettings


@dataclass(frozen=True)
class ArtifactAccess:
    """What the rest of a tenant needs to know about its artifact storage.

    Exactly one of (role_arn) or (access_key_id, secret_access_key) is set, by `artifacts.credentials`.
    The static key pair is always a Pulumi secret.
    """

    bucket: pulumi.Output[str]
    region: str
    kms_key_arn: Optional[pulumi.Output[str]]
    role_arn: Optional[pulumi.Output[str]]
    access_key_id: Optional[pulumi.Output[str]]
    secret_access_key: Optional[pulumi.Output[str]]


# A scheduled key deletion can be cancelled until the window ends; data stacks get AWS's longest window.
KMS_DELETION_WINDOW_PROTECTED_DAYS = 30
KMS_DELETION_WINDOW_DAYS = 7


def resource_tags(spec: TenantSpec, names: TenantNames, settings: StackSettings) -> dict[str, str]:
    """Tags on every taggable tenant resource, so cost reports and audits can be cut per tenant and team.

    The cost-allocation tag is set here, not only as a provider default tag: a region's provider is shared by every
    tenant there and by the platform, so its default carries the platform's value."""
    return {
        "tenant": spec.name,
        "team": spec.team,
        "environment": settings.environment,
        "org": settings.org,
        "managed-by": naming.MANAGED_BY,
        naming.COST_ALLOCATION_KEY: names.cost_allocation,
    }


def own_and_close(name: str, opts: pulumi.ResourceOptions, bucket: aws.s3.Bucket) -> None:
    """Every bucket tenancy makes: objects owned by the bucket's account (no ACLs) and no public access at all."""
    sdk.register(
        aws.s3.BucketOwnershipControls,
        f"{name}-ownership",
        opts,
        bucket=bucket.id,
        rule={"object_ownership": "BucketOwnerEnforced"},
    )
    sdk.register(
        aws.s3.BucketPublicAccessBlock,
        f"{name}-public-access-block",
        opts,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )


@dataclass(frozen=True)
class TenantStorageArgs:
    spec: TenantSpec
    names: TenantNames
    settings: StackSettings
    providers: Providers
    # The platform's access-log bucket of the tenant's region, when this stack creates it.
    access_log_ready: Optional[pulumi.Resource] = None


class TenantStorage(pulumi.ComponentResource):
    """The tenant's artifact bucket with its hardening, the optional KMS key, and the identity Argo uses."""

    access: ArtifactAccess

    def __init__(self, name: str, args: TenantStorageArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tenancy:storage:TenantStorage", name, None, opts)
        spec, names, settings = args.spec, args.names, args.settings
        artifacts = spec.artifacts
        provider = args.providers.aws(spec.region)
        tags = resource_tags(spec, names, settings)
        opts_ = child(self, provider)
        data_opts = child(self, provider, protect=settings.protect_data, retain_on_delete=settings.protect_data)

        bucket = sdk.register(
            aws.s3.Bucket,
            f"{name}-bucket",
            data_opts,
            ["arn"],
            bucket=names.bucket,
            force_destroy=settings.artifacts.force_destroy,
            tags=tags,
        )
        own_and_close(name, opts_, bucket)

        kms_key = None
        sse_default: dict = {"sse_algorithm": "AES256"}
        if spec.uses_kms:
            kms_key = sdk.register(
                aws.kms.Key,
                f"{name}-kms-key",
                data_opts,
                ["key_id", "arn"],
                description=f"Artifacts of tenant {spec.name} ({settings.environment})",
                enable_key_rotation=True,
                tags=tags,
                deletion_window_in_days=(
                    KMS_DELETION_WINDOW_PROTECTED_DAYS if settings.protect_data else KMS_DELETION_WINDOW_DAYS
                ),
            )
            sdk.register(
                aws.kms.KeyPolicy,
                f"{name}-kms-key-policy",
                opts_,
                key_id=kms_key.key_id,
                policy=pulumi.Output.all(kms_key.arn, bucket.arn).apply(
                    lambda arns: json.dumps(iam_policies.kms_key_policy(arns[0], arns[1]))
                ),
            )
            sdk.register(aws.kms.Alias, f"{name}-kms-alias", opts_, name=names.kms_alias, target_key_id=kms_key.key_id)
            sse_default = {"sse_algorithm": "aws:kms", "kms_master_key_id": kms_key.arn}
        sdk.register(
            aws.s3.BucketServerSideEncryptionConfiguration,
            f"{name}-sse",
            opts_,
            bucket=bucket.id,
            # The bucket key cuts KMS requests (and their cost and throttling) by orders of magnitude.
            rules=[{"apply_server_side_encryption_by_default": sse_default, "bucket_key_enabled": spec.uses_kms}],
        )
        sdk.register(
            aws.s3.BucketVersioning,
            f"{name}-versioning",
            opts_,
            bucket=bucket.id,
            # "Suspended", not "Disabled": only Suspended is accepted once a bucket has ever been versioned.
            versioning_configuration={"status": "Enabled" if artifacts.versioning else "Suspended"},
        )
        sdk.register(
            aws.s3.BucketLifecycleConfiguration,
            f"{name}-lifecycle",
            opts_,
            bucket=bucket.id,
            rules=iam_policies.lifecycle_rules(
                artifacts.storage_class,
                noncurrent_expire_days=settings.artifacts.noncurrent_version_expire_days,
                archive_after_days=artifacts.archive_after_days,
                expire_after_days=artifacts.expire_after_days,
            ),
        )
        sdk.register(
            aws.s3.BucketPolicy,
            f"{name}-tls-only",
            opts_,
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(iam_policies.tls_only_bucket_policy(arn))),
        )
        if settings.artifacts.access_logs:
            # Every request to the bucket, the tenant's and anyone else's, recorded where the tenant cannot reach.
            sdk.register(
                aws.s3.BucketLogging,
                f"{name}-access-logs",
                child(self, provider, depends_on=[args.access_log_ready] if args.access_log_ready else []),
                bucket=bucket.id,
                target_bucket=naming.access_log_bucket(settings.org, settings.environment, spec.region),
                target_prefix=f"{names.bucket}/",
            )

        kms_arn = kms_key.arn if kms_key is not None else None
        role_arn = access_key_id = secret_access_key = None
        if spec.keeps_identities:
            role_arn, access_key_id, secret_access_key = self._identity(name, args, bucket, kms_arn, tags, opts_)

        self.access = ArtifactAccess(
            bucket=bucket.bucket,
            region=spec.region,
            kms_key_arn=kms_arn,
            role_arn=role_arn,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
        self.register_outputs({"bucket": bucket.bucket, "roleArn": role_arn, "kmsKeyArn": kms_arn})

    def _identity(
        self,
        name: str,
        args: TenantStorageArgs,
        bucket: aws.s3.Bucket,
        kms_arn: Optional[pulumi.Output[str]],
        tags: dict[str, str],
        opts_: pulumi.ResourceOptions,
    ):
        """The principal Argo uses and its one policy; a suspended tenant's principal stays but cannot act."""
        spec, names, settings = args.spec, args.names, args.settings
        artifacts = spec.artifacts
        document = pulumi.Output.all(bucket.arn, kms_arn).apply(
            lambda values: json.dumps(
                iam_policies.artifact_access_policy(
                    values[0], artifacts.key_prefix, allow_delete=artifacts.garbage_collection, kms_key_arn=values[1]
                )
            )
        )
        policy = sdk.register(
            aws.iam.Policy,
            f"{name}-policy",
            opts_,
            ["arn"],
            name=names.iam_policy,
            policy=document,
            tags=tags,
            description=f"Artifact access of tenant {spec.name}",
        )
        if artifacts.credentials == "irsa":
            irsa = settings.irsa
            if irsa is None:
                raise ValueError("IRSA credentials need tenancy:irsa; the catalogue check should have refused this")
            trust = (
                iam_policies.irsa_trust_policy(
                    irsa.oidc_provider_arn, irsa.issuer, names.namespace, naming.RUNNER_SERVICE_ACCOUNT
                )
                if spec.is_active
                else iam_policies.suspended_trust_policy(irsa.oidc_provider_arn)
            )
            role = sdk.register(
                aws.iam.Role,
                f"{name}-role",
                opts_,
                ["arn"],
                name=names.iam_role,
                assume_role_policy=json.dumps(trust),
                tags=tags,
            )
            if spec.is_active:
                sdk.register(
                    aws.iam.RolePolicyAttachment, f"{name}-role-policy", opts_, role=role.name, policy_arn=policy.arn
                )
            return role.arn, None, None
        user = sdk.register(aws.iam.User, f"{name}-user", opts_, name=names.iam_user, tags=tags)
        if spec.is_active:
            sdk.register(
                aws.iam.UserPolicyAttachment, f"{name}-user-policy", opts_, user=user.name, policy_arn=policy.arn
            )
        # Suspension disables the key instead of deleting it, so resuming does not rotate it under the tenant.
        key = sdk.register(
            aws.iam.AccessKey,
            f"{name}-access-key",
            opts_,
            ["secret"],
            user=user.name,
            status="Active" if spec.is_active else "Inactive",
        )
        return None, pulumi.Output.secret(key.id), pulumi.Output.secret(key.secret)
