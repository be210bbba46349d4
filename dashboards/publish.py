"""Push the data source, the folder and every dashboard to a running Grafana (``dashboards publish``).

Idempotent: each object has a fixed uid, so a second run updates what the first created
(data source by uid, folder by uid, dashboards posted with ``overwrite``) and never duplicates.
Every dashboard file is read and checked before anything is sent, and the data source is the
first thing written, so bad input changes nothing in Grafana.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError, TokenAuth

from dashboards.datasource import DATASOURCE_UID
from dashboards.folder import FOLDER_TITLE, FOLDER_UID
from dashboards.provision import datasource_definition
from smartcity.settings import GrafanaSettings

__all__ = [
    "DASHBOARDS_DIR",
    "PublishError",
    "PublishReport",
    "connect_grafana",
    "load_dashboards",
    "publish",
]

# Where `smartcity dashboards build` writes the dashboards JSON (compose mounts the same directory).
DASHBOARDS_DIR: Final = Path(__file__).resolve().parent / "json"
_MESSAGE: Final = "smartcity dashboards publish"

Outcome = Literal["created", "updated", "unchanged"]


class PublishError(RuntimeError):
    """Publishing cannot go on: settings missing, a dashboard file invalid, or Grafana refused."""


@dataclass(frozen=True)
class PublishReport:
    """What one run did: the data source's and folder's outcome, and each dashboard pushed."""

    url: str
    datasource: Outcome
    folder: Outcome
    dashboards: list[dict[str, Any]] = field(default_factory=list)  # uid, title, version, file

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain data (``--json``)."""
        return {"url": self.url, "datasource": self.datasource, "folder": self.folder,
                "dashboards": self.dashboards}


def connect_grafana(grafana: GrafanaSettings) -> GrafanaApi:
    """Return a client for the Grafana the settings name, authenticated by its token.

    Raises:
        PublishError: the URL or the token is not set.
    """
    if grafana.url is None:
        raise PublishError("set SMARTCITY_GRAFANA__URL to the Grafana to publish to (http://host:3000)")
    if grafana.token is None:
        raise PublishError("set SMARTCITY_GRAFANA__TOKEN to a Grafana service-account token (Editor role)")
    credential = TokenAuth(token=grafana.token.get_secret_value())
    api: GrafanaApi = GrafanaApi.from_url(url=grafana.url, credential=credential, timeout=grafana.timeout_s)
    return api


def load_dashboards(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Read and check every ``*.json`` dashboard under ``directory``, in path order.

    Raises:
        PublishError: no dashboard, a file that is not a dashboard object with a uid and a title,
            or two files with one uid (Grafana would keep only the last).
    """
    if not directory.is_dir():
        raise PublishError(f"{directory} is not a directory (run `smartcity dashboards build`)")
    found: list[tuple[Path, dict[str, Any]]] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.rglob("*.json")):
        try:
            dashboard = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PublishError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(dashboard, dict):
            raise PublishError(f"{path}: a dashboard is a JSON object, not {type(dashboard).__name__}")
        uid, title = dashboard.get("uid"), dashboard.get("title")
        # Without a fixed uid Grafana makes a new dashboard on every run: no idempotence.
        if not isinstance(uid, str) or not uid:
            raise PublishError(f"{path}: the dashboard has no uid; a fixed uid keeps publishing idempotent")
        if not isinstance(title, str) or not title:
            raise PublishError(f"{path}: the dashboard has no title")
        if uid in seen:
            raise PublishError(f"{path} and {seen[uid]} both have uid {uid!r}")
        seen[uid] = path
        found.append((path, dashboard))
    if not found:
        raise PublishError(f"no dashboard JSON under {directory} (run `smartcity dashboards build`)")
    return found


def publish(api: GrafanaApi, grafana: GrafanaSettings, directory: Path = DASHBOARDS_DIR) -> PublishReport:
    """Create or update the data source, the folder and every dashboard under ``directory``.

    Raises:
        PublishError: a dashboard file is invalid, the data source must be created and no
            password is set, or Grafana refused a request (401: the token; 403: its role).
    """
    dashboards = load_dashboards(directory)
    url = grafana.url or ""
    try:
        datasource = _publish_datasource(api, grafana)
        folder = _publish_folder(api)
        pushed = [_publish_dashboard(api, path, dashboard, directory) for path, dashboard in dashboards]
    except GrafanaUnauthorizedError:
        raise PublishError(f"Grafana at {url} refused the token (401 Unauthorized): check"
                           " SMARTCITY_GRAFANA__TOKEN (a service-account token, not expired)") from None
    except GrafanaException as err:
        if err.status_code == 403:
            raise PublishError(f"Grafana at {url} forbade the request (403): the token's service"
                               " account needs the Editor role (Admin to change the data source)") from None
        if err.status_code == 0:
            raise PublishError(f"cannot reach Grafana at {url}: {err.message}") from None
        raise PublishError(f"Grafana at {url} answered {err.status_code}: {err.message}") from None
    except OSError as err:  # the HTTP library's connection errors (refused, DNS, TLS) are OSErrors
        raise PublishError(f"cannot reach Grafana at {url}: {err}") from None
    return PublishReport(url, datasource, folder, pushed)


def _publish_datasource(api: GrafanaApi, grafana: GrafanaSettings) -> Outcome:
    password = grafana.db_password.get_secret_value() if grafana.db_password is not None else None
    exists = _exists(lambda: api.datasource.get_datasource_by_uid(DATASOURCE_UID))
    if not exists and password is None:
        raise PublishError("the data source does not exist in Grafana yet: set"
                           " SMARTCITY_GRAFANA__DB_PASSWORD (the password of SMARTCITY_GRAFANA__DB_USER)"
                           " to create it")
    definition = datasource_definition(grafana, password)
    if exists:
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, definition)
        return "updated"
    api.datasource.create_datasource(definition)
    return "created"


def _publish_folder(api: GrafanaApi) -> Outcome:
    try:
        folder = api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError as err:
        if err.status_code != 404:
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        return "created"
    if folder.get("title") == FOLDER_TITLE:
        return "unchanged"
    api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
    return "updated"


def _publish_dashboard(api: GrafanaApi, path: Path, dashboard: dict[str, Any],
                       directory: Path) -> dict[str, Any]:
    # Grafana matches on uid; a numeric id from another Grafana would name some other dashboard.
    body = {"dashboard": {**dashboard, "id": None}, "folderUid": FOLDER_UID, "overwrite": True,
            "message": _MESSAGE}
    answer = api.dashboard.update_dashboard(body)
    return {"uid": dashboard["uid"], "title": dashboard["title"], "version": answer.get("version"),
            "file": str(path.relative_to(directory))}


def _exists(get: Any) -> bool:
    try:
        get()
    except GrafanaClientError as err:
        if err.status_code == 404:
            return False
        raise
    return True
