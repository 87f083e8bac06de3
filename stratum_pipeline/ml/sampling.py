"""A stratified sample of tenants for the global default model, so its training does not grow with every tenant.

The rule (`stratified_tenants`): with more than `max_tenants` tenants, rank them by volume (their rows in the
training window: campaign-days for ROAS), cut the ranking into `strata` groups of (nearly) equal size, and take
from each group its share of `max_tenants` in proportion to the group's tenants (largest remainder). Within a
group the tenants with the lowest CRC-32 of their id are taken: the same tenants month after month while they
exist, so successive default models are trained on comparable populations, and no random state is involved.
Small tenants and large ones are represented as they are in the population.
"""

import zlib

import numpy as np
import pandas as pd


def stratified_tenants(volume: pd.Series, max_tenants: int, strata: int = 4) -> list[str]:
    """The tenants (index of `volume`, tenant -> rows) to train on: all of them up to `max_tenants`, else a
    sample of `max_tenants` stratified by volume. Sorted."""
    if max_tenants < 1 or strata < 1:
        raise ValueError(f"max_tenants and strata must be at least 1, not {max_tenants} and {strata}")
    tenants = volume.sort_index()
    if len(tenants) <= max_tenants:
        return sorted(map(str, tenants.index))
    ranked = tenants.rank(method="first").sort_values().index  # smallest first, ties by tenant id
    groups = np.array_split(np.asarray(ranked), min(strata, len(ranked)))
    quota = np.array([len(g) for g in groups]) * max_tenants / len(ranked)
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: max_tenants - take.sum()]:
        take[i] += 1
    chosen = []
    for group, n in zip(groups, take):
        chosen += sorted(group, key=lambda t: (zlib.crc32(str(t).encode()), str(t)))[:n]
    return sorted(map(str, chosen))
