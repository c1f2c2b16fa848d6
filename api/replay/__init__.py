"""`attimo replay FILE`: send a file of events through the real HTTP ingest.

A shop moving to Attimo, or someone trying it on yesterday's traffic, has
its events as NDJSON or as a Segment export. The replay reads the file as a
stream (`source`), checks each event with the ingest's own validator so a
bad line is named without being sent (`checks`), sends the rest in batches
to `POST /v1/batch` at full speed or at a set rate, waiting out
backpressure (`sender`, `pacing`), and reports what was refused and why
(`report`). `command` wires them to the command line.
"""
