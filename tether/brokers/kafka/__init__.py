"""``kafka://``: Apache Kafka (or a Kafka-compatible broker) through aiokafka.

URL: ``kafka://[user:password@]host:port[,host:port...][?option=value&...]``. A host without a
port gets 9092. Options (times in milliseconds):

=========================  ========  =========================================================
option                     default   meaning
=========================  ========  =========================================================
``partitions``             4         partitions of a topic Tether creates on first use
``replication_factor``     1         replicas of a topic Tether creates
``session_timeout_ms``     10000     a member silent this long is presumed dead
``heartbeat_interval_ms``  3000      group heartbeat period (below session_timeout_ms)
``rebalance_timeout_ms``   session   how long the coordinator waits for members to rejoin;
                                     half of it is spent draining revoked partitions
``commit_interval_ms``     50        how often settled offsets are committed
``linger_ms``              5         producer wait to fill a batch
``max_batch_size``         1048576   producer batch size in bytes (per partition)
``max_request_size``       1048576   largest produce request
``compression_type``       none      ``gzip``, ``snappy``, ``lz4`` or ``zstd``
``fetch_max_wait_ms``      100       how long a fetch waits for data on the broker
``fetch_max_bytes``        52428800  bytes per fetch response
``max_partition_fetch_bytes``  1048576  bytes per partition in one fetch response
``max_poll_records``       2000      records taken from the fetcher per loop turn
``request_timeout_ms``     40000     one request to the broker
``connect_timeout_ms``     10000     connect() gives up after this (BrokerUnavailableError)
``client_id``              tether    client id shown in broker logs
``security_protocol``      PLAINTEXT ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``
``sasl_mechanism``         PLAIN     with SASL: ``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``
=========================  ========  =========================================================

User and password in the URL are the SASL credentials; ``url`` on the broker omits the password.

Events travel in the CloudEvents Kafka binding (binary mode): the record key is the event's
``partitionkey``, so one key always lands on one partition (murmur2, as Kafka's own clients
compute it) and keeps its order. Topics Tether has not seen are created on first publish or
subscribe with ``partitions`` partitions, so a key's partition is fixed from its first event.
A subscription is one consumer in the Kafka consumer group ``group`` with auto-commit off:
offsets are committed only up to the first unsettled delivery of a partition (periodically,
on revoke and on close), which gives at-least-once delivery. The producer is not idempotent
(acks=all; a retry can duplicate), so consumers must tolerate duplicates either way.

A broker that restarts without its state (tansu's memory engine) is survived: a member the
coordinator forgot commits nothing, the topic is created again and the member re-joins; a
failed publish makes the next one check its topic first (``subscription``, docs/brokers.md).

Modules: ``settings`` (the URL), ``broker`` (producer, topics, publishing), ``subscription``
(consumer group member, offsets, commits), ``errors`` (aiokafka errors as broker errors),
``outage`` (an outage logged in a few lines, aiokafka's repeats cut).
"""

from __future__ import annotations

from tether.brokers.kafka.broker import KafkaBroker
from tether.brokers.kafka.settings import KafkaSettings, parse_url
from tether.brokers.kafka.subscription import KafkaSubscription


def from_url(url: str) -> KafkaBroker:
    return KafkaBroker(parse_url(url))


__all__ = ["KafkaBroker", "KafkaSettings", "KafkaSubscription", "from_url", "parse_url"]
