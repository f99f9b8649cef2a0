"""
The QStash protocol, sans-IO, for both transports: the endpoints, the longest URL and the path-segment
check (:mod:`.endpoints`); what a request carries, the one id splitter and the last refusal before the
network (:mod:`.calls`); how answers are read (:mod:`.answers`); and the requests and answers of messages
and bulk actions (:mod:`.messages`) and of the dead-letter queue (:mod:`.dlq`). Each function sends at
most one request, or pages one listing; no loop over rounds and no join policy lives here: those are
:mod:`airflow_qstash.runs`.
"""
