"""`python -m pushgate` runs the CLI."""

from pushgate.cli import app

app()
