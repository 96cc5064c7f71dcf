#!/usr/bin/env python
"""Summarise base-to-new runs into the papers' tables: ``cpt.cli.results.parse`` (``-h`` lists the options)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cpt.cli.results.parse import main

if __name__ == "__main__":
    sys.exit(main())
