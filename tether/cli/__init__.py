"""The ``tether`` command: ``tether run``, ``tether worker``, ``tether workflow`` and
``tether broker`` (``main.py``; one module or package per subcommand)."""
