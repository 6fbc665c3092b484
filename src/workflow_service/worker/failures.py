"""Why a run cannot go on."""


class RunFailed(Exception):
    """The run cannot go on; the message is its failure_reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
