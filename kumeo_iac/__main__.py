"""``python -m kumeo_iac`` is the ``kumeo`` command."""

import sys

from kumeo_iac.cli import main

sys.exit(main())
