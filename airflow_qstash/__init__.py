"""Apache Airflow provider for Upstash QStash: bulk-cancel pending messages safely, in batches."""

__version__ = "0.3.0"
