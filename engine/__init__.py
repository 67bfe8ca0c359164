"""kiwoom-engine: a trading daemon for Kiwoom Securities REST + WebSocket API."""
