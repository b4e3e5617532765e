"""Events out of a worker: schemas, the durable spool, Kafka and the embedded local bus.

Knows nothing of video or detection; takes serialised events and delivers them.
"""
