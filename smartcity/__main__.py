"""`python -m smartcity` runs the CLI (how `smartcity up` starts its children)."""

from smartcity.cli import main

main()
