"""The Grafana folder that holds the platform's dashboards and alert rules: one definition."""

from __future__ import annotations

from typing import Final

__all__ = ["FOLDER_TITLE", "FOLDER_UID"]

# Fixed uid, so `dashboards publish` updates the folder it made instead of making another.
FOLDER_UID: Final = "smartcity-paser"
# Also the directory compose mounts the dashboards JSON at, under the provider's path: with
# foldersFromFilesStructure, Grafana names the folder after that directory.
FOLDER_TITLE: Final = "Smart City Paser"
