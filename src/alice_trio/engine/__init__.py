"""The trio engine: the only code that spawns, reads pipes, watches time and kills processes.

* :mod:`.spawn` — the one spawn path (checks, env, new session, typed errors, teardown) and the
  small :class:`~.spawn.Child` protocol the rest of the engine talks to (fakeable).
* :mod:`.oneshot` — one turn as one process: the run nursery.
* :mod:`.process_group` — ending a session leader's whole group (SIGTERM, grace, SIGKILL).
* :mod:`.reaper` — sweeping processes that escaped the group (subreaper / marker scan) and
  reaping the orphans a subreaper host adopts.
* :mod:`.callbacks` — delivering events to callbacks without stalling the reader.
* :mod:`.stderr_tail` — the bounded stderr tail used in errors.

Internal: no stability promise (see :mod:`alice_trio`), except the process-cleanup switches
documented in docs/process-cleanup.md (``reaper.configure``/``describe``,
``guardian.configure``).
"""
