"""GET /api/v1/sites: the ten districts of Kabupaten Paser, from the database."""

from __future__ import annotations

from smartcity.catalog import SITES
from tests.api.client import TestClient


def test_sites_lists_the_ten_paser_districts(client: TestClient) -> None:
    response = client.get("/api/v1/sites")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert len(body) == 10
    assert {site["site_id"] for site in body} == set(SITES)
    grogot = next(site for site in body if site["site_id"] == "tanah-grogot")
    assert grogot == {
        "site_id": "tanah-grogot", "name": "Tanah Grogot",
        "latitude": SITES["tanah-grogot"].latitude, "longitude": SITES["tanah-grogot"].longitude,
        "timezone": "Asia/Makassar",
    }
