"""Long-running bus services that are neither a worker nor the console: each reads a Kafka consumer group and
writes to a store (or publishes what it derives).

* :mod:`services.plate_indexer`: ``kuzet.plates.v1`` -> the plate history (``kuzet plates index``);
* :mod:`services.watchlist_alerts`: ``kuzet.plates.v1`` -> ``watchlist_hit`` incidents (``kuzet plates watch``).

They sit beside ``worker`` and ``dispatch`` in the import graph: they use ``event_bus`` and ``storage``, and
``storage`` knows nothing of them or of Kafka.
"""
