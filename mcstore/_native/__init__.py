"""The compiled core: ``model`` and ``codec`` compiled by mypyc from the very same sources.

This package holds only build outputs (see ``setup.py``); ``mcstore._select`` decides at
import whether they are used. Nothing here is public: import ``mcstore`` or ``mcstore.model``.
"""
