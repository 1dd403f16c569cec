"""The tuneforge web service: REST API, persistence, scheduler and CLI."""
