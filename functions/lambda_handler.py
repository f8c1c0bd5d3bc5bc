"""AWS Lambda entry point: the same ASGI app behind API Gateway, through Mangum.

Handler setting: ``functions.lambda_handler.handler``. Connections are made on
first use and reused while the container stays warm (see functions/deps.py),
so the ASGI lifespan is off.
"""

from __future__ import annotations

from mangum import Mangum

from functions.main import app
from orderflow.log import configure_logging
from orderflow.settings import get_settings
from orderflow.tracing import configure_tracing

_settings = get_settings()
configure_logging("functions-lambda", _settings.log_level, _settings.log_format)
configure_tracing(_settings, "functions-lambda")

handler = Mangum(app, lifespan="off")
