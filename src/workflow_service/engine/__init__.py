"""The engine front end: ``python -m workflow_service.engine [-D name=value]... model.glm``.

It runs a GridLAB-D model on the PyPI ``gridlabd`` bindings like the
``gridlabd`` executable would, reports progress on stderr and exits with a
documented code; see :mod:`workflow_service.engine.frontend` for the exit-code
table and the progress line format. Importing this package does not import
``gridlabd``.
"""

from workflow_service.engine.frontend import (
    EXIT_LOAD,
    EXIT_MEANINGS,
    EXIT_OK,
    EXIT_RUN,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_START,
    EXIT_USAGE,
    PROGRESS_RE,
)

__all__ = [
    "EXIT_LOAD",
    "EXIT_MEANINGS",
    "EXIT_OK",
    "EXIT_RUN",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_START",
    "EXIT_USAGE",
    "PROGRESS_RE",
]
