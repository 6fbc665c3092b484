"""``python -m workflow_service.engine [-D name=value]... model.glm``."""

import sys

from workflow_service.engine.frontend import main

if __name__ == "__main__":
    main(sys.argv[1:])
