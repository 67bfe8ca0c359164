"""Reports shared by a live day and a backtest: the figures (metrics.py, figures.py), the
plots (plot.py: matplotlib, imported only when drawing), and the daily report of a live or
simulated day read from the journal (daily.py, source.py, command.py).

Nothing here is imported by the daemon's start-up except day_end.py and files.py, which import
no plotting, no pyarrow: the daemon runs the report in a subprocess (`kiwoom-engine report`).
"""
