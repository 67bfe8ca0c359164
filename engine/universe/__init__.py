"""The strategies' run-time universe: the condition searches (조건검색) they watch and the symbols
they subscribe to while running.

`rules` holds the pure decisions (what a condition reference or a data kind may be, the
realtime limit), `port` the feed the universe talks to (the Kiwoom side implements it in
engine/kiwoom/universe_feed.py), and `manager` the `Universe` that routes hits, registers
symbols, loads what a new symbol needs and journals what survives a restart.
"""
