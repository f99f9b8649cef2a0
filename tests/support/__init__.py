"""Helpers the layers share that are not doubles of QStash: clocks, connections, task logs, Airflow versions,
the summary keys, the UI's date format, and the loopback and proxy servers of the transport tests."""
