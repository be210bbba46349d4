"""Settings for every service, read once at the entry point and passed down.

Environment variables use the ``SMARTCITY_`` prefix and ``__`` between section and key
(``SMARTCITY_INGEST__BATCH_MAX_ROWS``). An optional dotenv file is read too: ``.env`` in the
working directory, or the file named by ``SMARTCITY_SETTINGS_FILE``. Environment wins over file.
"""

from smartcity.settings.alerts import AlertsSettings
from smartcity.settings.domain import (
    DEFAULT_AVERAGING_HOURS,
    GrafanaSettings,
    IndexSettings,
    SimulatorSettings,
)
from smartcity.settings.root import Settings, UnknownSettingError, load_settings, setting_keys
from smartcity.settings.services import (
    ApiSettings,
    EmbeddedSettings,
    IngestSettings,
    RetentionSettings,
    RollupSettings,
    SupervisorSettings,
)

__all__ = [
    "DEFAULT_AVERAGING_HOURS",
    "AlertsSettings",
    "ApiSettings",
    "EmbeddedSettings",
    "GrafanaSettings",
    "IndexSettings",
    "IngestSettings",
    "RetentionSettings",
    "RollupSettings",
    "Settings",
    "SimulatorSettings",
    "SupervisorSettings",
    "UnknownSettingError",
    "load_settings",
    "setting_keys",
]
