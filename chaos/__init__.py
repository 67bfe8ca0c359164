"""Fault injection against the whole daemon (`make chaos`; a short run is in the test suite).

Each scenario starts `kiwoom-engine sim` (its fault-control endpoint on), a Mosquitto the
harness can restart, and the real daemon (`kiwoom-engine run`) with a strategy trading; drives
one kind of fault from outside; then checks the invariants of chaos/checks.py against the
simulator's books, the daemon's journal, log and /status, and what an MQTT subscriber heard.
"""
