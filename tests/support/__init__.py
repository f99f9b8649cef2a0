"""Helpers the layers share that are not doubles of QStash: clocks, connections, task logs, Airflow versions,
the summary keys, the UI's date format, the driver of the sans-IO procedures, and the loopback and proxy
servers of the transport tests, and the first event of a trigger run as the triggerer runs it."""
