"""Hypothesis strategies for hostile input and the assertions on what an API may answer to it
(used by test_hostile_input and test_seed_backend)."""

import json
import math

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from stratum_pipeline.ml.inputs import InputError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hostile_scalar = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["nan", "inf", "-inf", "1e999", " 3.5 ", "", "x'; DROP TABLE campaigns;--", "12abc"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
# Integers beyond float range (a 400-digit number in a JSON document): fine in a dict, but pandas itself cannot
# build a frame of them, so only the record-level APIs get them.
huge_int = st.integers(min_value=10**300, max_value=10**400).flatmap(lambda n: st.sampled_from([n, -n]))
hostile_or_huge = st.one_of(hostile_scalar, huge_int)
plausible = st.floats(min_value=0, max_value=50, allow_nan=False)
value = st.one_of(plausible, hostile_or_huge)


def mostly(valid, hostile=hostile_scalar):
    """Valid values three times in four, so that both the result and the error paths are exercised
    (one_of would flatten the hostile alternatives and pick them far more often)."""
    return st.integers(0, 3).flatmap(lambda i: hostile if i == 3 else valid)


def hostile_record(names, required=(), hostile=hostile_or_huge):
    """A dict with `required` keys (mostly plausible values) and some of `names` (plausible or hostile values)."""
    optional = {name: mostly(plausible, hostile) for name in [*names, "unexpected"] if name not in required}
    return st.fixed_dictionaries(
        {name: mostly(st.floats(0.1, 50), hostile) for name in required}, optional=optional
    )


def hostile_rows(names, required=()):
    """Rows for a frame: mostly plausible, some with hostile values or missing keys."""
    return st.lists(
        mostly(hostile_record(names, required, hostile_scalar), hostile_record(names, (), hostile_scalar)),
        max_size=6,
    )


def outcome(call):
    """Run `call`; a clear error is fine (returned as None), anything else must be a valid result."""
    try:
        return call()
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 300, repr(message)
        # raised by the validation at the API boundary, not by pandas/numpy deep inside
        assert isinstance(exc, InputError) or (isinstance(exc, TypeError) and " must be a " in message), repr(
            exc
        )
        return None


def finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def strict_json(result) -> None:
    json.dumps(result, allow_nan=False, default=str)
