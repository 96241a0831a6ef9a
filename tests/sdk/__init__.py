"""Tests of the Python SDK (tether.App and ``tether worker``)."""
