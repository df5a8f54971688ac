"""Stands in as the `__main__` file of a pytest-xdist worker (see tests/conftest.py).

A `spawn` child process re-runs its parent's main file as `__mp_main__`; this one does nothing.
"""
