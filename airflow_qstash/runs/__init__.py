"""
The runs: the loops that repeat a bulk cancel (:mod:`.bulk_cancel`) or a DLQ delete/retry (:mod:`.dlq`)
until nothing the filter selects is left, bounded, as sans-IO generators that the operator (on a worker)
and the trigger (in the triggerer) drive alike; and the DLQ preview (:mod:`.dlq_preview`).
"""
