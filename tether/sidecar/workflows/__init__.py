"""Dapr's workflow management HTTP API (``api``), its request and answer shapes
(``shape``), Tether's own instance reads (``reads``) and the components it uses
(``components``)."""
