"""The HTTP layer: request parsing, response rendering, middlewares, the route table."""
