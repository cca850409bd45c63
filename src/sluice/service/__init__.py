"""Application services: the one conductor of an append (ingest), rebuilds, retention,
background upkeep and the tracked processors that follow the log."""
