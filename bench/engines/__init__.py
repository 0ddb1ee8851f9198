"""Engine runners, one module each, run as ``python -m bench.engines.NAME JOB.json`` in their own process.

Peers run from their own venvs, so these modules import only the standard library, ``bench.harness``
and the engine they wrap.
"""
