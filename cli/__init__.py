"""`kino`: the command-line client of Kino's public API (through the gateway)."""
