"""The ``alice-trio`` command line (``alice_trio.cli.main:main``).

Internal: the command line is the interface, not these modules (see :mod:`alice_trio`)."""
