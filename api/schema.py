"""The GraphQL schema served: the root types of `resolvers/` in `schema.app`'s `Schema`.

Composed here, above both, so that resolvers import the schema's types and the
schema never imports a resolver (`tests/test_layers.py` keeps it so).
"""

from resolvers.mutation import Mutation
from resolvers.query import Query
from resolvers.subscription import Subscription
from schema.app import build_schema

schema = build_schema(query=Query, mutation=Mutation, subscription=Subscription)
