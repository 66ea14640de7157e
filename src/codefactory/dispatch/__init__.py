"""Where runs execute: worker threads in the `serve` process (the default) or Celery workers,
each run owned through a lease in the store (`dispatch.leases`)."""
