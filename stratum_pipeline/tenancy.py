"""Tenant ids: validated before they become partition keys, model names or file paths.

The seed backend's tenant ids are integers (`tenant_id: int`, files `roas_t123.joblib`). An integer id
means its decimal string: `validate_tenant_id(123) == "123"`, so 123 and "123" are the same tenant in
partition keys, MLflow model names, model file names and cache keys.
"""

import numbers
import re

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
