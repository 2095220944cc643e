"""`make bench`: throughput, latency and memory of the AutomateOS stack on real PostgreSQL and Redis.

Layout: `config` (settings from the environment and the command line), `stats` (percentiles),
`proc` (resident memory from /proc), `machine` (what ran it), `loadgen` (wrk, or a Python
fallback in its own process), `target` (what is measured: the `Target` interface a peer such
as n8n can implement later), `automateos` (our stack as a target), `phases` (ingress, engine),
`report` (the Markdown), `cli` (the run). See bench/NOTES.md.
"""
