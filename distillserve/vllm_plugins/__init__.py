"""Plugins that vLLM loads into its own processes (entry points in ``pyproject.toml``)."""
