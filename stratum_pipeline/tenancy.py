"""Tenant ids: validated before they become partition keys, model names or file paths."""

import re

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Names the global models use (stratum-roas-default, roas_default.joblib): a tenant called so would collide.
RESERVED_TENANT_IDS = frozenset({"default"})


class InvalidTenantId(ValueError):
    pass


def validate_tenant_id(tenant_id: object) -> str:
    """Return the tenant id if it is safe (lowercase letters, digits, '_' or '-', 1-63 chars), else raise."""
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise InvalidTenantId(
            f"invalid tenant id {tenant_id!r}: use 1-63 lowercase letters, digits, '_' or '-', starting with a letter or digit"
        )
    if tenant_id in RESERVED_TENANT_IDS:
        raise InvalidTenantId(f"invalid tenant id {tenant_id!r}: reserved for the global default model")
    return tenant_id
