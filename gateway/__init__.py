"""The Kiungo gateway node: protocol, exchange pipeline, peers, log, hosted services and the CLI."""

__all__: list[str] = []
