-- Whether a connection keeps task arguments and results. Off by default: ingest drops args,
-- kwargs and result from every source's events before the log unless it is on
-- (`sluice connections set ID --capture-args on`).
ALTER TABLE connections ADD COLUMN capture_args boolean NOT NULL DEFAULT false;
