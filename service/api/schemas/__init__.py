"""The request and response types of the REST API (pydantic), at the edge."""
