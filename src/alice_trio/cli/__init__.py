"""The ``alice-trio`` command line (``alice_trio.cli.main:main``)."""
