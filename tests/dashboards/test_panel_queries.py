"""The panel SQL builders refuse what would put unchecked text into Grafana's SQL."""

from __future__ import annotations

import pytest

from smartcity.db.queries import panels


def test_an_unknown_metric_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown metric 'pm2_5'; the catalogue has .*pm25"):
        panels.aggregate_series("pm2_5", "avg", "site", "Asia/Makassar")
    with pytest.raises(ValueError, match="unknown metric \"x'; DROP TABLE devices; --\""):
        panels.latest_at_least_table("x'; DROP TABLE devices; --", "Asia/Makassar", 80)


def test_an_unknown_aggregate_domain_or_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown agg 'median'; one of avg, min"):
        panels.aggregate_call("pm25", "median", "site", "Asia/Makassar")
    with pytest.raises(ValueError, match="unknown domain 'industry'"):
        panels.device_options("industry")
    with pytest.raises(ValueError, match="status 'on line' cannot name a column"):
        panels.device_status_counts(["online", "on line"])


def test_a_call_names_the_range_interval_and_both_filters() -> None:
    call = panels.aggregate_call("water_level", "last", "device", "Asia/Makassar")
    assert call == ("smartcity_aggregate('water_level', '$__interval', 'last', $__timeFrom(), $__timeTo(),\n"
                    "    ARRAY[${device:sqlstring}]::text[], ARRAY[${district:sqlstring}]::text[], "
                    "'device', 'Asia/Makassar')")


def test_rate_of_rise_is_per_hour_between_consecutive_buckets_of_one_gauge() -> None:
    sql = panels.rate_of_rise_series("water_level", "Asia/Makassar", 100)
    assert "(value - lag(value) OVER w) * 100" in sql
    assert "/ (extract(epoch FROM time - lag(time) OVER w) / 3600)" in sql
    assert "WINDOW w AS (PARTITION BY key ORDER BY time)" in sql


def test_a_fixed_bucket_is_a_count_and_a_unit_and_failed_lamps_are_judged_per_hour() -> None:
    with pytest.raises(ValueError, match=r"bucket '1h; DROP TABLE devices' is not \$__interval or a count"):
        panels.aggregate_call("lamp_on", "min", "device", "Asia/Makassar", bucket="1h; DROP TABLE devices")
    sql = panels.failed_lamps_series("lamp_on", "lamp_power", "Asia/Makassar", 5)
    assert sql.count("smartcity_aggregate('lamp_") == 2 and sql.count("'1h', ") == 2
    assert "greatest(smartcity_bucket_width('$__interval'), INTERVAL '1 hour')" in sql
