"""Thin GraphQL resolvers: decode IDs, check access, call one service, map the result."""
