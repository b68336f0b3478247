"""``python -m jaxstyle.cli``: the ``jaxstyle`` command."""

import sys

from jaxstyle.cli.main import main

sys.exit(main())
