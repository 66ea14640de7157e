"""One advisory per vulnerability: OSV records that name each other in `aliases`.

OSV's bucket carries a flaw under every database that reported it (PyPA's PYSEC-2018-28 and
GitHub's GHSA-x84v-xcm2-53pg are CVE-2018-18074); a reviewer wants it once.
"""

from __future__ import annotations

from codefactory.advisories.ecosystems import VersionScheme
from codefactory.advisories.records import Advisory

# The ecosystem's own database names the merged advisory: PyPA's PYSEC ids, then GitHub's.
_ID_PREFERENCE = ("PYSEC-", "GHSA-")


def merge_aliases(found: list[Advisory], scheme: VersionScheme) -> list[Advisory]:
    """One advisory per vulnerability: records whose id or aliases meet (OSV `aliases` name
    the same vulnerability in other databases) are merged under the preferred id (PYSEC,
    then GHSA, then the lowest), with every other name as an alias and every fixed version.
    Sorted by id."""
    groups: list[list[Advisory]] = []
    for advisory in found:
        names = set(advisory.names)
        joined = [g for g in groups if names & {n for a in g for n in a.names}]
        merged = [advisory] + [a for g in joined for a in g]
        groups = [g for g in groups if g not in joined] + [merged]
    return sorted((_merged(group, scheme) for group in groups), key=lambda a: a.id)


def _merged(group: list[Advisory], scheme: VersionScheme) -> Advisory:
    if len(group) == 1:
        return group[0]
    ranked = sorted(
        group,
        key=lambda a: (
            next((i for i, p in enumerate(_ID_PREFERENCE) if a.id.startswith(p)), 9),
            a.id,
        ),
    )
    first = ranked[0]
    aliases = dict.fromkeys(n for a in ranked for n in a.names if n != first.id)
    fixed = {v for a in group for v in a.fixed}
    return Advisory(
        id=first.id,
        aliases=tuple(aliases),
        summary=first.summary or next((a.summary for a in ranked if a.summary), ""),
        package=first.package,
        fixed=tuple(
            sorted(fixed, key=lambda v: (scheme.parse(v) is None, scheme.parse(v) or 0, v))
        ),
        severity=first.severity or next((a.severity for a in ranked if a.severity), ""),
        ecosystem=first.ecosystem,
    )
