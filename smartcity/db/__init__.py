"""Database access shared by every service: connection URL, migrations, catalogue seed."""

from smartcity.db.connect import database_url, service_database_url
from smartcity.db.migrate import MigrationError, apply_migrations
from smartcity.db.seed import seed_catalog

__all__ = ["MigrationError", "apply_migrations", "database_url", "seed_catalog", "service_database_url"]
