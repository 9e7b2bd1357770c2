"""Lets ``python -m rl_lab_env serve ...`` work without an installed script."""

import sys

from rl_lab_env.cli import main

sys.exit(main())
