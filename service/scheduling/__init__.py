"""The scheduler side: the thread that runs every active study, its process, its metrics."""
