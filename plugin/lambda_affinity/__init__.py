"""lambda-affinity: measure how AWS Lambda reuses execution environments per user."""

__version__ = "0.1.0"
