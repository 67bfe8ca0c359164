"""The backtest: the engine's own bus, strategy host, OMS, risk, portfolio and journal run over
the history store on a simulated clock, with an in-process broker and no sockets.

Never imported by the daemon's start-up (an import-linter contract in pyproject.toml)."""
