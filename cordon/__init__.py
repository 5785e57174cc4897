"""The composition root: assembles the services into processes (API, worker, embedded)."""
