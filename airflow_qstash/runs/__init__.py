"""
The runs: the loops that repeat a bulk cancel (:mod:`.bulk_cancel`) or a DLQ delete/retry (:mod:`.dlq`)
until nothing the filter selects is left, bounded, as sans-IO generators that the operator (on a worker)
and the trigger (in the triggerer) drive alike; the DLQ dry run (:mod:`.dlq_preview`); what the loops
share, the stop flag, the request bound, the bounded poll of a bulk action, progress judged on what is
left and the summary basics (:mod:`.common`); and when a run follows an action it did not start
(:mod:`.join`). What a request carries and how its answer is read is :mod:`airflow_qstash.protocol`.
"""
