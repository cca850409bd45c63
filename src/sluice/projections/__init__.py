"""Projectors: fold batches of the event log into read models; rebuild by replay."""
