"""`python -m convlstm_jax.training`: the command `convlstm-train`."""

import sys

from .cli import main

sys.exit(main())
