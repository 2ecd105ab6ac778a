"""accelscope: observability for shared, heterogeneous AI-accelerator clusters.

This package holds what both agents share: the CLI entry point, config
loading, JSON logging, the aiohttp server with web-config, and the schema
types.  The agents (``exporter``, ``scheduler_events``) import from here and
never from each other.
"""

__version__ = "0.1.0"
