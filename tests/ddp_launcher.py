"""Entry point for the DDP test: registers the engine fixtures, then runs train.py's CLI."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tests.engine_fixtures  # noqa: F401  (registers EngineFixture / EngineTiny)
import train

if __name__ == "__main__":
    train.cli(sys.argv[1:])
