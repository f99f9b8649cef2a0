"""
The QStash protocol, sans-IO, for both transports: the endpoints (:mod:`.endpoints`), the effects a
procedure yields and the last refusal before the network (:mod:`.calls`), how answers are read
(:mod:`.answers`), and the requests and answers of messages (:mod:`.messages`) and of the dead-letter
queue (:mod:`.dlq`). No loops over rounds live here: those are :mod:`airflow_qstash.runs`.
"""
