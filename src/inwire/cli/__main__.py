"""``python -m inwire.cli``."""

from inwire.cli.main import app

app()
