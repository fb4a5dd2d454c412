"""The trio engine: the only code that spawns, reads pipes, watches time and kills processes.

* :mod:`.oneshot` — one turn as one process: the run nursery.
* :mod:`.process_group` — spawning in a new session and ending the whole group.
* :mod:`.reaper` — sweeping processes that escaped the group (subreaper / marker scan).
* :mod:`.callbacks` — delivering events to callbacks without stalling the reader.
* :mod:`.stderr_tail` — the bounded stderr tail used in errors.

Internal: no stability promise (see :mod:`alice_trio`), except the process-cleanup switches
documented in docs/process-cleanup.md (``reaper.configure``/``describe``,
``guardian.configure``).
"""
