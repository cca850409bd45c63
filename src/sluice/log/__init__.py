"""The event log: append (dedup key, positions, NOTIFY), read by position, and follow it
(the one follower behind SSE and every tracked processor)."""
