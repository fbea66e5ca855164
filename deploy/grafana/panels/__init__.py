"""The dashboards' panel groups, one module per row, each built with Grafana's official
``grafana-foundation-sdk``: a module has the row's ``TITLE`` and ``panels()``, the panel builders
in order, each sized on the 24-column grid. ``common`` holds what they share."""
