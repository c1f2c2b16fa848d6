"""Everything that talks to the outside: websocket gateway, HTTP ingest, decisions, admin API."""
