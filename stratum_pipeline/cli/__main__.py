"""`python -m stratum_pipeline.cli`: the `stratum` command."""

import sys

from stratum_pipeline.cli import main

sys.exit(main())
