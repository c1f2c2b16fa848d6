"""`python -m api.replay FILE …`: what `attimo replay` runs."""

import sys

from api.replay.command import main

sys.exit(main())
