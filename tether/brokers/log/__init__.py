"""A broker over a partitioned log store: the engine behind ``memory://`` and
``embedded://``. Stores implement :class:`LogStore`; group membership, partition leases,
rebalancing and commits are done once, in :mod:`tether.brokers.log.subscription`."""

from tether.brokers.log.broker import LogBroker
from tether.brokers.log.store import LogStore

__all__ = ["LogBroker", "LogStore"]
