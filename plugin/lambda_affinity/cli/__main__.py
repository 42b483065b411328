"""`python -m lambda_affinity.cli`: the `lambda-affinity` command."""

import sys

from . import main

sys.exit(main())
