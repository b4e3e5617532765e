"""Where snapshots (and later plate history and workflow state) are kept.

Knows nothing of Kafka: the spool relay calls a store through a hook.
"""
