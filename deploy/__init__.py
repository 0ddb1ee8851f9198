"""Deployment's one home: what gets installed, how servers are configured, and how they are run.

- ``runtime``: builds an installed runtime tree (code, models with their optimised graphs, a copy
  of the venv) for the library install (``make install``), the web tree (``make deploy``) and
  through it the worker pool;
- ``library``: the C library's install (``make install``: the library, its header, its pkg-config
  file and its runtime tree);
- ``sites``: renders the lighttpd, Apache and systemd configurations from the templates here;
- ``servers``: runs them (real lighttpd, Apache and pools on free ports, in the foreground) for
  ``make serve``, the tests and the benchmark;
- ``python -m deploy``: the command line over all three.

Stdlib only: the tests, the benchmark and the Makefile use it with any Python.
"""
