"""What the service tells of its studies: HTML reports, live event streams, Prometheus metrics."""
