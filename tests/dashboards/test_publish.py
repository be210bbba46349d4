"""`dashboards publish` against a local stand-in for Grafana's HTTP API that records every call.

Grafana cannot run on these machines (no Docker engine, no package), so this stand-in is the one
allowed (README "Grafana"): it keeps data sources, folders and dashboards in memory, answers as
Grafana's API does for what publish uses (404 for a missing uid, 409 for a duplicate, 412 for a
dashboard posted over another without overwrite, 401 for a bad token), and the tests judge
publish by its state and its call log: the first run creates, the second updates, nothing is
duplicated, and bad input or a refused token writes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from dashboards.datasource import DATASOURCE_NAME, DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.folder import FOLDER_TITLE, FOLDER_UID
from dashboards.publish import PublishError, connect_grafana, publish
from smartcity.cli import main
from smartcity.services import free_port
from smartcity.settings import GrafanaSettings

TOKEN = "glsa_stand-in-token"
DB_PASSWORD = "grafana-db-secret"


class GrafanaStandIn:
    """Grafana's HTTP API as far as publish uses it, in memory, recording every call."""

    def __init__(self, server: HTTPServer) -> None:
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.bodies: list[tuple[str, str, Any]] = []
        self.read_only = False  # True: a Viewer's token (403 on writes)
        server.expect_request(re.compile(r"^/.*$")).respond_with_handler(self.handle)

    def writes(self) -> list[tuple[str, str]]:
        """The calls that change something."""
        return [(method, path) for method, path in self.calls if method != "GET"]

    def handle(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        self.calls.append((request.method, request.path))
        self.bodies.append((request.method, request.path, body))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _json({"message": "invalid API key"}, 401)
        if self.read_only and request.method != "GET":
            return _json({"message": "You'll need additional permissions to perform this action."}, 403)
        route = (request.method, request.path)
        if match := re.fullmatch(r"/api/datasources/uid/([^/]+)", request.path):
            return self._datasource(request.method, match.group(1), body)
        if route == ("POST", "/api/datasources"):
            names = {d["name"] for d in self.datasources.values()}
            if body["uid"] in self.datasources or body["name"] in names:
                return _json({"message": "data source with the same name already exists"}, 409)
            self.datasources[body["uid"]] = {**body, "id": len(self.datasources) + 1}
            return _json({"message": "Datasource added", "datasource": body})
        if match := re.fullmatch(r"/api/folders/([^/]+)", request.path):
            return self._folder(request.method, match.group(1), body)
        if route == ("POST", "/api/folders"):
            if body["uid"] in self.folders:
                return _json({"message": "a folder with the same uid already exists"}, 409)
            self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "version": 1}
            return _json(self.folders[body["uid"]])
        if route == ("POST", "/api/dashboards/db"):
            return self._dashboard(body)
        return _json({"message": "Not found"}, 404)

    def _datasource(self, method: str, uid: str, body: Any) -> Response:
        if uid not in self.datasources:
            return _json({"message": "Data source not found"}, 404)
        if method == "PUT":
            kept = self.datasources[uid]
            # Grafana keeps the secure fields an update leaves out.
            self.datasources[uid] = {**body, "id": kept["id"],
                                     "secureJsonData": body.get("secureJsonData", kept.get("secureJsonData"))}
            return _json({"message": "Datasource updated"})
        return _json(self.datasources[uid])

    def _folder(self, method: str, uid: str, body: Any) -> Response:
        if uid not in self.folders:
            return _json({"message": "folder not found"}, 404)
        if method == "PUT":
            self.folders[uid] = {**self.folders[uid], "title": body["title"],
                                 "version": self.folders[uid]["version"] + 1}
        return _json(self.folders[uid])

    def _dashboard(self, body: Any) -> Response:
        dashboard, folder = body["dashboard"], body.get("folderUid")
        if folder not in self.folders:
            return _json({"message": "folder not found"}, 400)
        kept = self.dashboards.get(dashboard["uid"])
        if kept is not None and not body.get("overwrite"):
            return _json({"message": "The dashboard has been changed by someone else",
                          "status": "version-mismatch"}, 412)
        version = 1 if kept is None else kept["version"] + 1
        self.dashboards[dashboard["uid"]] = {"dashboard": dashboard, "folderUid": folder, "version": version}
        return _json({"status": "success", "uid": dashboard["uid"], "version": version,
                      "url": f"/d/{dashboard['uid']}"})


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


@pytest.fixture
def grafana(httpserver: HTTPServer) -> Iterator[GrafanaStandIn]:
    yield GrafanaStandIn(httpserver)
    httpserver.clear()


@pytest.fixture
def dashboards_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "json"
    (directory / "nested").mkdir(parents=True)
    for path, uid, title in ((directory / "environment.json", "paser-env", "Smart Environment — Paser"),
                             (directory / "living.json", "paser-living", "Smart Living — public services"),
                             (directory / "nested" / "health.json", "paser-health", "Platform health")):
        # An id from the Grafana the JSON came from must not reach this one.
        path.write_text(json.dumps({"uid": uid, "title": title, "id": 42, "panels": [], "schemaVersion": 41}))
    return directory


def _settings(server: HTTPServer, **changes: Any) -> GrafanaSettings:
    values: dict[str, Any] = {"url": server.url_for("/"), "token": TOKEN, "db_password": DB_PASSWORD}
    return GrafanaSettings(**{**values, **changes})


def _publish(server: HTTPServer, directory: Path, **changes: Any) -> Any:
    settings = _settings(server, **changes)
    return publish(connect_grafana(settings), settings, directory)


def test_the_first_run_creates_everything(httpserver: HTTPServer, grafana: GrafanaStandIn,
                                          dashboards_dir: Path) -> None:
    report = _publish(httpserver, dashboards_dir)
    assert (report.datasource, report.folder) == ("created", "created")
    datasource = grafana.datasources[DATASOURCE_UID]
    assert (datasource["name"], datasource["type"]) == (DATASOURCE_NAME, DATASOURCE_TYPE)
    assert datasource["jsonData"]["timescaledb"] is True and datasource["jsonData"]["timeInterval"] == "1m"
    assert datasource["jsonData"]["database"] == "smartcity" and datasource["user"] == "grafana"
    assert datasource["secureJsonData"] == {"password": DB_PASSWORD}
    assert grafana.folders == {FOLDER_UID: {"uid": FOLDER_UID, "title": FOLDER_TITLE, "version": 1}}
    stored = {uid: (d["folderUid"], d["version"], d["dashboard"]["id"])
              for uid, d in grafana.dashboards.items()}
    assert stored == {"paser-env": (FOLDER_UID, 1, None), "paser-living": (FOLDER_UID, 1, None),
                      "paser-health": (FOLDER_UID, 1, None)}
    assert [d["file"] for d in report.dashboards] == ["environment.json", "living.json", "nested/health.json"]
    assert grafana.writes() == [("POST", "/api/datasources"), ("POST", "/api/folders")] + [
        ("POST", "/api/dashboards/db")] * 3


def test_the_second_run_updates_and_duplicates_nothing(httpserver: HTTPServer, grafana: GrafanaStandIn,
                                                       dashboards_dir: Path) -> None:
    _publish(httpserver, dashboards_dir)
    created = len(grafana.calls)
    (dashboards_dir / "living.json").write_text(json.dumps(
        {"uid": "paser-living", "title": "Smart Living (renamed)", "panels": []}))
    report = _publish(httpserver, dashboards_dir)
    second = grafana.calls[created:]
    assert (report.datasource, report.folder) == ("updated", "unchanged")
    assert ("POST", "/api/datasources") not in second and ("POST", "/api/folders") not in second
    assert ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}") in second
    assert len(grafana.datasources) == 1 and len(grafana.folders) == 1 and len(grafana.dashboards) == 3
    assert {uid: d["version"] for uid, d in grafana.dashboards.items()} == {
        "paser-env": 2, "paser-living": 2, "paser-health": 2}
    assert grafana.dashboards["paser-living"]["dashboard"]["title"] == "Smart Living (renamed)"
    posted = [body for _, path, body in grafana.bodies if path == "/api/dashboards/db"]
    assert len(posted) == 6 and all(body["overwrite"] is True for body in posted)


def test_an_update_without_the_password_keeps_grafanas(httpserver: HTTPServer, grafana: GrafanaStandIn,
                                                       dashboards_dir: Path) -> None:
    _publish(httpserver, dashboards_dir)
    _publish(httpserver, dashboards_dir, db_password=None, db_host="db.example:5432")
    put = [body for method, path, body in grafana.bodies if method == "PUT" and "datasources" in path]
    assert len(put) == 1 and "secureJsonData" not in put[0]
    assert grafana.datasources[DATASOURCE_UID]["url"] == "db.example:5432"
    assert grafana.datasources[DATASOURCE_UID]["secureJsonData"] == {"password": DB_PASSWORD}


def test_creating_the_data_source_needs_the_password(httpserver: HTTPServer, grafana: GrafanaStandIn,
                                                     dashboards_dir: Path) -> None:
    with pytest.raises(PublishError, match="SMARTCITY_GRAFANA__DB_PASSWORD"):
        _publish(httpserver, dashboards_dir, db_password=None)
    assert grafana.writes() == [] and grafana.datasources == {}


def test_a_refused_token_is_a_clear_error_and_writes_nothing(httpserver: HTTPServer, grafana: GrafanaStandIn,
                                                              dashboards_dir: Path) -> None:
    refused = r"refused the token \(401 Unauthorized\).*SMARTCITY_GRAFANA__TOKEN"
    with pytest.raises(PublishError, match=refused):
        _publish(httpserver, dashboards_dir, token="glsa_wrong")
    assert grafana.calls and grafana.writes() == []
    assert grafana.datasources == {} and grafana.folders == {} and grafana.dashboards == {}


def test_a_viewer_token_is_told_which_role_it_needs(httpserver: HTTPServer, grafana: GrafanaStandIn,
                                                    dashboards_dir: Path) -> None:
    grafana.read_only = True
    with pytest.raises(PublishError, match=r"403.*Editor role"):
        _publish(httpserver, dashboards_dir)
    assert grafana.datasources == {}


@pytest.mark.parametrize(("name", "text", "message"), [
    ("broken.json", '{"uid": "x", "title": ', "not valid JSON"),
    ("list.json", '[{"uid": "x"}]', "a JSON object, not list"),
    ("no-uid.json", '{"title": "No uid"}', "has no uid"),
    ("no-title.json", '{"uid": "no-title"}', "has no title"),
    ("twin.json", '{"uid": "paser-env", "title": "Twin"}', "both have uid 'paser-env'"),
])
def test_a_bad_dashboard_file_is_named_and_nothing_is_sent(httpserver: HTTPServer, grafana: GrafanaStandIn,
                                                            dashboards_dir: Path, name: str, text: str,
                                                            message: str) -> None:
    (dashboards_dir / name).write_text(text)
    with pytest.raises(PublishError, match=re.escape(message)) as caught:
        _publish(httpserver, dashboards_dir)
    assert name in str(caught.value)
    assert grafana.calls == []


def test_an_empty_or_missing_directory_is_refused(httpserver: HTTPServer, grafana: GrafanaStandIn,
                                                  tmp_path: Path) -> None:
    with pytest.raises(PublishError, match="no dashboard JSON under"):
        _publish(httpserver, tmp_path)
    with pytest.raises(PublishError, match="is not a directory"):
        _publish(httpserver, tmp_path / "absent")
    assert grafana.calls == []


def test_an_unreachable_grafana_is_a_clear_error(dashboards_dir: Path) -> None:
    settings = GrafanaSettings(url=f"http://127.0.0.1:{free_port()}", token=TOKEN, db_password=DB_PASSWORD,
                               timeout_s=2)
    with pytest.raises(PublishError, match="cannot reach Grafana at http://127.0.0.1"):
        publish(connect_grafana(settings), settings, dashboards_dir)


@pytest.mark.parametrize(("changes", "message"), [
    ({"url": None}, "set SMARTCITY_GRAFANA__URL"),
    ({"token": None}, "set SMARTCITY_GRAFANA__TOKEN"),
])
def test_missing_settings_are_named(httpserver: HTTPServer, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(PublishError, match=message):
        connect_grafana(_settings(httpserver, **changes))


def test_the_url_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="SMARTCITY_GRAFANA__URL must be http"):
        GrafanaSettings(url="grafana:3000")


def _cli_env(server: HTTPServer, token: str) -> dict[str, str]:
    return {"SMARTCITY_GRAFANA__URL": server.url_for("/"), "SMARTCITY_GRAFANA__TOKEN": token,
            "SMARTCITY_GRAFANA__DB_PASSWORD": DB_PASSWORD, "SMARTCITY_SETTINGS_FILE": "/nonexistent/.env"}


def test_the_command_publishes_and_reports(httpserver: HTTPServer, grafana: GrafanaStandIn,
                                           dashboards_dir: Path) -> None:
    runner = CliRunner()
    args = ["dashboards", "publish", "--dir", str(dashboards_dir), "--json"]
    first = runner.invoke(main, args, env=_cli_env(httpserver, TOKEN))
    assert first.exit_code == 0, first.output
    second = runner.invoke(main, args, env=_cli_env(httpserver, TOKEN))
    assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)  # the stand-in server logs to stderr
    assert (report["datasource"], report["folder"]) == ("updated", "unchanged")
    assert [(d["uid"], d["version"]) for d in report["dashboards"]] == [
        ("paser-env", 2), ("paser-living", 2), ("paser-health", 2)]
    assert len(grafana.dashboards) == 3


def test_the_command_fails_with_one_line_on_401(httpserver: HTTPServer, grafana: GrafanaStandIn,
                                                dashboards_dir: Path) -> None:
    result = CliRunner().invoke(main, ["dashboards", "publish", "--dir", str(dashboards_dir)],
                                env=_cli_env(httpserver, "glsa_wrong"))
    assert result.exit_code == 1
    assert "Error: Grafana at" in result.output and "401 Unauthorized" in result.output
    assert TOKEN not in result.output and "glsa_wrong" not in result.output
    assert grafana.writes() == []
