"""The pure core: the probe's reply (reply.py), per-user tallies (tracker.py), the summary statistics
(summary.py), the named shapes that cross modules (schema.py), host forms (hosts.py) and Lambda's limits
(limits.py). No I/O and no Locust, gevent or AWS SDK: every other layer builds on it."""
