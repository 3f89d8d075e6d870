"""Which input changes make a provider replace (delete + create) a resource instead of updating it in place.

One table for every aws/vault/random type the program creates, read by `tenancy diff` (DATA_KINDS, to warn
about data a change would destroy) and by the e2e stand-in providers (tests/e2e/standin, whose Diff answers
replace exactly for these fields). The bridged Pulumi schemas do not carry Terraform's ForceNew, so each entry
cites the Terraform provider source it was read from (ForceNew in SDKv2 schemas, RequiresReplace plan modifiers
in plugin-framework ones).

Fields are input paths as Pulumi spells them on the wire and in resources.json: camelCase, nested with dots; a
change at or below one of them replaces. `""` means every input.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Replacement:
    replaced_when: tuple[str, ...]
    source: str


_AWS = "terraform-provider-aws internal/service/"
_VAULT = "terraform-provider-vault vault/"
# Added to every vault resource by UpdateSchemaResource (vault/provider.go).
_VAULT_NAMESPACE = "namespace ForceNew (internal/provider/schema_util.go GetNamespaceSchema)"


def _vault(fields: tuple[str, ...], source: str) -> Replacement:
    return Replacement(fields + ("namespace",), f"{_VAULT}{source}; {_VAULT_NAMESPACE}")


REPLACEMENTS: dict[str, Replacement] = {
    # S3: the bucket and the per-bucket configuration resources (each keyed by the bucket it configures).
    "aws:s3/bucket:Bucket": Replacement(
        ("bucket", "bucketPrefix", "objectLockEnabled"),
        f"{_AWS}s3/bucket.go: bucket, bucket_prefix, object_lock_enabled ForceNew",
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": Replacement(
        ("bucket",), f"{_AWS}s3/bucket_ownership_controls.go: bucket ForceNew"
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": Replacement(
        ("bucket",), f"{_AWS}s3/bucket_public_access_block.go: bucket ForceNew"
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": Replacement(
        ("bucket", "expectedBucketOwner"),
        f"{_AWS}s3/bucket_server_side_encryption_configuration.go: bucket, expected_bucket_owner ForceNew",
    ),
    "aws:s3/bucketVersioning:BucketVersioning": Replacement(
        ("bucket", "expectedBucketOwner"), f"{_AWS}s3/bucket_versioning.go: bucket, expected_bucket_owner ForceNew"
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": Replacement(
        ("bucket", "expectedBucketOwner"),
        f"{_AWS}s3/bucket_lifecycle_configuration.go: bucket, expected_bucket_owner ForceNew (RequiresReplace "
        "since its plugin-framework rewrite)",
    ),
    "aws:s3/bucketPolicy:BucketPolicy": Replacement(("bucket",), f"{_AWS}s3/bucket_policy.go: bucket ForceNew"),
    "aws:s3/bucketLogging:BucketLogging": Replacement(
        ("bucket", "expectedBucketOwner"),
        f"{_AWS}s3/bucket_logging.go: bucket, expected_bucket_owner ForceNew (target_* update)",
    ),
    # KMS
    "aws:kms/key:Key": Replacement(
        ("customerMasterKeySpec", "keyUsage", "multiRegion", "customKeyStoreId", "xksKeyId"),
        f"{_AWS}kms/key.go: customer_master_key_spec, key_usage, multi_region, custom_key_store_id, xks_key_id "
        "ForceNew",
    ),
    "aws:kms/keyPolicy:KeyPolicy": Replacement(
        ("keyId",), f"{_AWS}kms/key_policy.go: key_id ForceNew (policy updates)"
    ),
    "aws:kms/alias:Alias": Replacement(
        ("name", "namePrefix"), f"{_AWS}kms/alias.go: name, name_prefix ForceNew (target_key_id updates)"
    ),
    # IAM
    "aws:iam/policy:Policy": Replacement(
        ("name", "namePrefix", "path", "description"),
        f"{_AWS}iam/policy.go: name, name_prefix, path, description ForceNew (policy adds a version)",
    ),
    "aws:iam/role:Role": Replacement(
        ("name", "namePrefix", "path"), f"{_AWS}iam/role.go: name, name_prefix, path ForceNew"
    ),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": Replacement(
        ("role", "policyArn"), f"{_AWS}iam/role_policy_attachment.go: role, policy_arn ForceNew"
    ),
    "aws:iam/user:User": Replacement(
        (), f"{_AWS}iam/user.go: nothing ForceNew (name and path change through UpdateUser)"
    ),
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": Replacement(
        ("user", "policyArn"), f"{_AWS}iam/user_policy_attachment.go: user, policy_arn ForceNew"
    ),
    "aws:iam/accessKey:AccessKey": Replacement(
        ("user", "pgpKey"), f"{_AWS}iam/access_key.go: user, pgp_key ForceNew (status updates)"
    ),
    # Keyspaces
    "aws:keyspaces/keyspace:Keyspace": Replacement(("name",), f"{_AWS}keyspaces/keyspace.go: name ForceNew"),
    # Not path-shaped, so not encoded here: table.go's CustomizeDiff also replaces when a column is removed or
    # client_side_timestamps is turned off (added columns update in place).
    "aws:keyspaces/table:Table": Replacement(
        (
            "keyspaceName",
            "tableName",
            "comment",
            "schemaDefinition.partitionKeys",
            "schemaDefinition.clusteringKeys",
            "schemaDefinition.staticColumns",
        ),
        f"{_AWS}keyspaces/table.go: keyspace_name, table_name, comment, schema_definition.partition_key, "
        "clustering_key, static_column ForceNew",
    ),
    # Vault. Mount and auth paths move in place (sys/remount, getMountCustomizeDiffFunc in
    # resource_aws_secret_backend.go forces new only before Vault 1.10 or with disable_remount).
    "vault:index/mount:Mount": _vault(
        ("type", "local", "sealWrap", "externalEntropyAccess"),
        "resource_mount.go: type, local, seal_wrap, external_entropy_access ForceNew",
    ),
    "vault:index/authBackend:AuthBackend": _vault(("type", "local"), "resource_auth_backend.go: type, local ForceNew"),
    "vault:index/policy:Policy": _vault(("name",), "resource_policy.go: name ForceNew"),
    "vault:kubernetes/authBackendConfig:AuthBackendConfig": _vault(
        ("backend",), "resource_kubernetes_auth_backend_config.go: backend ForceNew"
    ),
    "vault:kubernetes/authBackendRole:AuthBackendRole": _vault(
        ("backend", "roleName"), "resource_kubernetes_auth_backend_role.go: backend, role_name ForceNew"
    ),
    "vault:kv/secretV2:SecretV2": _vault(("mount", "name"), "resource_kv_secret_v2.go: mount, name ForceNew"),
    # Cost Explorer
    "aws:costexplorer/costAllocationTag:CostAllocationTag": Replacement(
        ("tagKey",), f"{_AWS}ce/cost_allocation_tag.go: tag_key ForceNew (status updates)"
    ),
    # random
    "random:index/randomPassword:RandomPassword": Replacement(
        ("",),
        "terraform-provider-random internal/provider/resource_password.go passwordSchemaV3: every argument "
        "RequiresReplace",
    ),
}


# pulumi-kubernetes v4.25.0 provider/pkg/provider/diff.go `forceNewProperties`, for the kinds tenancy renders (the
# provider is built without enableConfigMapMutable / enableSecretMutable, components/providers.py): every kind's
# `.metadata.name` and `.metadata.namespace` (`metadataForceNewProperties`), and per kind below. Keys are type tokens
# without the `kubernetes:` prefix and the version, which the table does not vary by for these kinds.
KUBERNETES_METADATA = ("metadata.name", "metadata.namespace")
KUBERNETES_REPLACEMENTS: dict[str, tuple[str, ...]] = {
    "core:ConfigMap": ("binaryData", "data"),  # unless the provider enables mutable ConfigMaps
    "core:Secret": ("type", "stringData", "data"),  # unless the provider enables mutable Secrets
    "core:Service": ("spec.clusterIP",),
    "core:ResourceQuota": ("spec.scopes",),
    "apps:Deployment": ("spec.selector",),
    "apps:DaemonSet": ("spec.selector",),
    "apps:StatefulSet": (
        "spec.podManagementPolicy",
        "spec.revisionHistoryLimit",
        "spec.selector",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
    ),
    "batch:Job": ("spec.completions", "spec.parallelism", "spec.selector", "spec.template"),
    "rbac.authorization.k8s.io:RoleBinding": ("roleRef",),
    "rbac.authorization.k8s.io:ClusterRoleBinding": ("roleRef",),
    "storage.k8s.io:StorageClass": ("parameters", "provisioner"),
}


def kubernetes_replaced_when(typ: str) -> tuple[str, ...]:
    """The inputs of a `kubernetes:<group>/<version>:<Kind>` resource whose change makes the provider replace it."""
    group = typ.split(":")[1].split("/")[0]
    return KUBERNETES_METADATA + KUBERNETES_REPLACEMENTS.get(f"{group}:{typ.rsplit(':', 1)[1]}", ())


def replaces(typ: str, path: str) -> bool:
    """Whether a change of input `path` (dotted camelCase, list items as `[i]`) replaces a resource of `typ`.

    A type missing from the table is an error: the stand-in and `tenancy diff` must not guess."""
    return any(
        field == "" or path == field or path.startswith((field + ".", field + "["))
        for field in REPLACEMENTS[typ].replaced_when
    )
