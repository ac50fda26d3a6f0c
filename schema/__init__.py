"""The GraphQL schema: types, inputs, payloads, enums, and the `Schema` (in `schema.app`)."""
