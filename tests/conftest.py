import os
import sys

from hypothesis import settings

# tests import their helpers (fake_provider, helpers, decoding, …) as top-level modules
sys.path.insert(0, os.path.dirname(__file__))

# CI runs the same Hypothesis examples every time (a rare example found on a developer's
# machine is a bug to fix there, not a coin flip that decides whether a submission lands);
# local runs keep exploring new examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
