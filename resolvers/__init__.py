"""Thin GraphQL resolvers: decode IDs, check access, call one service, map the result.

They make up the root `Query`, `Mutation` and `Subscription`, which `api.schema`
puts in the `Schema`. Resolvers import `schema/`; nothing in `schema/` imports them.
"""
