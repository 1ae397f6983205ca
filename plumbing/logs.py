"""Structured logging: one JSON object a line in production, readable text on a terminal."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
#: `scheme://user:password@`: a URL setting (or a library's error message) with credentials
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:]*):[^\s/@]+@")


def redact_urls(text: str) -> str:
    """`text` with the password of every URL in it replaced, so no log line carries one."""
    return _URL_PASSWORD.sub(r"\g<head>:***@", text) if "://" in text else text


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; `extra=` fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact_urls(json.dumps(out, default=str))


class TextFormatter(logging.Formatter):
    """Readable one-line text with `extra=` fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _RESERVED and not k.startswith("_")
        ]
        return redact_urls(line + ("  " + " ".join(extras) if extras else ""))


def setup_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Configures the root logger once for a component process."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "mode", "faust", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
