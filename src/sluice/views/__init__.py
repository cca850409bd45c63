"""Read models: each declared once (`registry.READ_MODELS`), in a folder of its own holding
its projector, its reader and their SQL. Ingest, rebuild and retention iterate the
registry; nothing else names their tables."""
