"""`python -m convlstm_jax.interop SOURCE DEST`: the command `convlstm-convert`."""

import sys

from .convert import main

sys.exit(main())
