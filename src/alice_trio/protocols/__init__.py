"""Pure (sans-I/O) protocol code for interactive sessions: message encoding and event mapping.

Internal: no stability promise (see :mod:`alice_trio`)."""
