"""SQL of the sites (the districts of Kabupaten Paser) as stored by the catalogue seed."""

from __future__ import annotations

from typing import Final

__all__ = ["SELECT_SITES"]

# () → (site_id, name, latitude, longitude, timezone) of every site, ordered by id.
SELECT_SITES: Final = "SELECT site_id, name, latitude, longitude, timezone FROM sites ORDER BY site_id"
