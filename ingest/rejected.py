"""The exception every ingest check raises: a contract reason and what to fix."""

from __future__ import annotations

from plumbing.reasons import Reason


class Rejected(ValueError):
    """The input breaks the data contract; it goes to the dead-letter topic with `reason`."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
