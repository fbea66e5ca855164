"""The gateway's HTTP API, one module per endpoint group (the layout of vLLM's
``entrypoints/openai``): each module builds an ``APIRouter`` from the objects it serves, passed in
typed, so no handler looks anything up in ``app.state``. ``serving.app.create_app`` wires them.

- ``completions``: POST /v1/chat/completions and /v1/completions (blocking JSON or SSE)
- ``models``: GET /v1/models
- ``health``: /healthz (liveness) and /readyz (readiness)
- ``metrics``: GET /metrics (Prometheus)
- ``auth``: the client API-key check
- ``errors``: exception handlers that render every failure as an OpenAI error body
"""
