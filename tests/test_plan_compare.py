"""The comparison of `tenancy diff --format json` with the engine's planned steps (tests/e2e/plan_compare.py),
which the e2e suite applies to real `pulumi preview` runs: each kind of disagreement is reported, agreement is not.

Step operations as pulumi/pulumi pkg/v3 resource/deploy/step.go names them (`OpReplace`, `OpCreateReplacement`,
`OpDeleteReplaced`, `OpDelete`...).
"""

from __future__ import annotations

from tests.e2e.plan_compare import compare, engine_plan, resource_key

PREFIX = "urn:pulumi:prod::tenancy::"
BUCKET = "tenancy:index:Tenant$tenancy:storage:TenantStorage$aws:s3/bucket:Bucket::research-storage-bucket"
ROLE = "tenancy:index:Tenant$tenancy:secrets:TenantSecrets$vault:kubernetes/authBackendRole:AuthBackendRole::research-role"
QUOTA = "tenancy:index:Tenant$tenancy:cluster:TenantCluster$kubernetes:core/v1:ResourceQuota::research-quota"


def step(op: str, key: str) -> tuple[str, str, str]:
    return op, PREFIX + key, key.rpartition("::")[0].rsplit("$", 1)[-1]


def diff(*, deleted=(), added=(), replaced=(), changed=(), destructive=()) -> dict:
    return {"destructive": [{"urn": PREFIX + key, "action": action} for key, action in destructive],
            "tenants": [{"tenant": "research", "onlyLeft": list(deleted), "onlyRight": list(added),
                         "changed": {k: {} for k in (*changed, *replaced)}, "replaced": {k: [] for k in replaced}}]}


def test_agreement_is_no_problem():
    steps = [step("same", "pulumi:pulumi:Stack::tenancy-prod"), step("delete", ROLE), step("update", QUOTA),
             step("create-replacement", BUCKET), step("replace", BUCKET), step("delete-replaced", BUCKET)]
    assert compare(diff(deleted=[ROLE], changed=[QUOTA], replaced=[BUCKET], destructive=[(BUCKET, "replace")]),
                   steps) == []


def test_replacement_halves_count_as_one_replace():
    assert engine_plan([step("create-replacement", BUCKET), step("delete-replaced", BUCKET)]) == {
        resource_key(BUCKET): ("replace", "aws:s3/bucket:Bucket")}


def test_synth_and_engine_type_chains_name_the_same_resource():
    """The engine's URN carries every ancestor's type, synth's mocks only the parent's (and the root Stack's)."""
    engine_urn = PREFIX + BUCKET
    synth_key = "tenancy:storage:TenantStorage$aws:s3/bucket:Bucket::research-storage-bucket"
    assert resource_key(engine_urn) == resource_key(synth_key) == "aws:s3/bucket:Bucket::research-storage-bucket"
    assert compare(diff(deleted=[synth_key], destructive=[(synth_key, "delete")]), [step("delete", BUCKET)]) == []


def test_an_engine_delete_the_diff_misses_is_reported():
    assert compare(diff(), [step("delete", ROLE)]) == [f"engine plans delete of {resource_key(ROLE)}; diff says nothing"]


def test_a_replace_the_diff_calls_an_update_is_reported():
    problems = compare(diff(changed=[QUOTA]), [step("replace", QUOTA)])
    assert problems == [f"engine plans replace of {resource_key(QUOTA)}; diff says update"]


def test_a_data_replace_missing_from_destructive_is_reported():
    problems = compare(diff(replaced=[BUCKET]), [step("replace", BUCKET)])
    assert problems == [f"engine plans replace of data resource {resource_key(BUCKET)}; diff's destructive list says nothing"]


def test_a_diff_deletion_the_engine_does_not_plan_is_reported():
    problems = compare(diff(deleted=[ROLE], destructive=[(BUCKET, "delete")]), [step("same", ROLE)])
    assert problems == [f"diff says delete of {resource_key(ROLE)}; engine plans nothing",
                        f"diff lists {resource_key(BUCKET)} as destructive (delete); engine plans nothing"]
