"""S3 server access logs of the tenants' artifact buckets: one log bucket per region, owned by the platform.

S3 delivers a bucket's access logs only to a bucket of the same account and region, and a destination with Object
Ownership `BucketOwnerEnforced` takes them through its bucket policy, granted to the service principal
`logging.s3.amazonaws.com` (Amazon S3 User Guide, "Enabling Amazon S3 server access logging" and "Permissions
for log delivery"). The log bucket itself logs nothing (its own logs would loop) and keeps SSE-S3, the default
encryption log delivery supports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Optional

import pulumi
import pulumi_aws as aws

from . import iam_policies, naming, sdk
from .providers import Providers, child
from .settings import StackSettings
from .storage import own_and_close

LOGGING_SERVICE = "logging.s3.amazonaws.com"


def log_delivery_policy(log_bucket: str, sources: Iterable[str]) -> dict:
    """The log bucket's policy: S3's log delivery may write there for exactly the `sources` buckets, each under its
    own prefix; nothing else is granted, and requests without TLS are refused."""
    tls = iam_policies.tls_only_bucket_policy(f"arn:aws:s3:::{log_bucket}")
    return {
        **tls,
        "Statement": [
            *tls["Statement"],
            *(
                {
                    "Sid": f"LogDelivery{index}",
                    "Effect": "Allow",
                    "Principal": {"Service": LOGGING_SERVICE},
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{log_bucket}/{source}/*",
                    "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{source}"}},
                }
                for index, source in enumerate(sorted(sources))
            ),
        ],
    }


@dataclass(frozen=True)
class AccessLogsArgs:
    settings: StackSettings
    providers: Providers
    # region -> the artifact buckets of the environment's tenants in it
    sources: dict[str, tuple[str, ...]]


class AccessLogs(pulumi.ComponentResource):
    """One log bucket per region that holds artifact buckets; `ready[region]` is done when it accepts logs."""

    ready: dict[str, pulumi.Resource]

    def __init__(self, name: str, args: AccessLogsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tenancy:storage:AccessLogs", name, None, opts)
        settings = args.settings
        self.ready = {}
        for region, sources in sorted(args.sources.items()):
            log_bucket = naming.access_log_bucket(settings.org, settings.environment, region)
            provider = args.providers.aws(region)
            opts_ = child(self, provider)
            prefix = f"{name}-{region}"
            # Audit records are data: protected and retained like the buckets they describe.
            bucket = sdk.register(
                aws.s3.Bucket,
                f"{prefix}-bucket",
                child(self, provider, protect=settings.protect_data, retain_on_delete=settings.protect_data),
                bucket=log_bucket,
                force_destroy=settings.artifacts.force_destroy,
            )
            own_and_close(prefix, opts_, bucket)
            sdk.register(
                aws.s3.BucketServerSideEncryptionConfiguration,
                f"{prefix}-sse",
                opts_,
                bucket=bucket.id,
                rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            )
            sdk.register(
                aws.s3.BucketLifecycleConfiguration,
                f"{prefix}-lifecycle",
                opts_,
                bucket=bucket.id,
                rules=[
                    {
                        "id": "expire-logs",
                        "status": "Enabled",
                        "filter": {"prefix": ""},
                        "expiration": {"days": settings.artifacts.access_log_days},
                    }
                ],
            )
            self.ready[region] = sdk.register(
                aws.s3.BucketPolicy,
                f"{prefix}-policy",
                opts_,
                bucket=bucket.id,
                policy=json.dumps(log_delivery_policy(log_bucket, sources)),
            )
        self.register_outputs({})
