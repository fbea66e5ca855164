"""Client keys with policies (``config.keys``): who calls (``keyring``), what a key may ask
(``rules``: models, routes, route forcing, the ``max_tokens`` cap), how much (``limiter``: requests
and tokens per minute and a budget per period, in ``limits`` storage shared by replicas), and
whether its traffic may be logged (``call_context``, read where teacher answers are logged).
``enforcement`` puts them together for the completion endpoints."""
