"""The API's async access to the database, one module per resource.

The SQL itself lives in `smartcity.db.queries` and is shared with the CLI's sync callers; these
modules only run it on the request's connection and shape the rows for the routes.
"""
