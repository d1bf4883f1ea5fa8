"""The canary: a candidate serves a growing share of users, judged against production.

``state`` is the canary's file (what runs, at which weight); ``judge`` is the statistics, a
pure function of the serving log's rows; ``actions`` are the moves (start, step, promote, roll
back, stop), each an audit event; ``controller`` is the server's loop that judges every interval
and acts on the verdict.
"""
