"""Tenant ids: validated before they become partition keys, model names or file paths.

The seed backend's tenant ids are integers (`tenant_id: int`, files `roas_t123.joblib`). An integer id
means its decimal string: `validate_tenant_id(123) == "123"`, so 123 and "123" are the same tenant in
partition keys, MLflow model names, model file names and cache keys.
"""

import numbers
import re
import zlib

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# The owner of the global models, trained on every tenant's rows (stratum-roas-default, roas_default.joblib),
# which serve a tenant below the data minimum; a tenant called so would collide.
DEFAULT_MODEL_OWNER = "default"
RESERVED_TENANT_IDS = frozenset({DEFAULT_MODEL_OWNER})

# Run tags. TENANT_SCOPE_TAG restricts a daily product run to one tenant (other tenants' rows of the day stay).
# TENANT_CONCURRENCY_TAG names the tenant of a per-tenant training or publishing run: the deployment's queued
# run coordinator limits runs per tenant on it (deploy/dagster.yaml), so one tenant's backlog cannot take every
# run slot.
TENANT_SCOPE_TAG = "stratum/tenant_id"
TENANT_CONCURRENCY_TAG = "tenant"

# Tenant training runs in batches (#16): a run process pays ~13 s of imports and start-up, a tenant's training
# ~1-8 s of work, so the schedules and the tenant sensor launch one run per batch of tenants. A tenant belongs to
# one of TRAINING_BUCKETS fixed buckets (a hash of its id, stable as tenants come and go); each bucket's tenants
# are cut into runs of at most MAX_TENANTS_PER_TRAINING_RUN. Every training run - a batch or one tenant's run -
# carries its bucket in TRAINING_BUCKET_TAG, and the deployment allows one run per bucket at a time: so two
# trainings of one tenant never run at once (the per-tenant rule), while the buckets train in parallel.
TRAINING_BUCKET_TAG = "stratum/training_bucket"
TRAINING_BUCKETS = 4
MAX_TENANTS_PER_TRAINING_RUN = 50


class InvalidTenantId(ValueError):
    pass


def validate_tenant_id(tenant_id: object) -> str:
    """The tenant id as text if it is safe (lowercase letters, digits, '_' or '-', 1-63 chars), else raise.

    A non-negative integer (int or numpy integer, not bool) is accepted as its decimal string."""
    if isinstance(tenant_id, numbers.Integral) and not isinstance(tenant_id, bool) and tenant_id >= 0:
        tenant_id = str(int(tenant_id))
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise InvalidTenantId(
            f"invalid tenant id {tenant_id!r}: use a non-negative integer or 1-63 lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    if tenant_id in RESERVED_TENANT_IDS:
        raise InvalidTenantId(f"invalid tenant id {tenant_id!r}: reserved for the global default model")
    return tenant_id


def training_bucket(tenant_id: str) -> str:
    """The tenant's training bucket ("0".."TRAINING_BUCKETS-1"): a CRC-32 of its id, the same in every process."""
    return str(zlib.crc32(tenant_id.encode()) % TRAINING_BUCKETS)


def training_batches(
    tenant_ids, max_per_run: int = MAX_TENANTS_PER_TRAINING_RUN
) -> list[tuple[str, tuple[str, ...]]]:
    """The runs that train `tenant_ids`: (bucket, tenants) per run, each bucket's tenants sorted and cut into runs
    of at most `max_per_run`; buckets in order. Every tenant is in exactly one run."""
    if max_per_run < 1:
        raise ValueError(f"max_per_run must be at least 1, not {max_per_run}")
    buckets: dict[str, list[str]] = {}
    for tenant in sorted(set(tenant_ids)):
        buckets.setdefault(training_bucket(tenant), []).append(tenant)
    return [
        (bucket, tuple(tenants[i : i + max_per_run]))
        for bucket, tenants in sorted(buckets.items(), key=lambda item: int(item[0]))
        for i in range(0, len(tenants), max_per_run)
    ]
