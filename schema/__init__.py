"""The GraphQL schema: types, inputs, payloads, enums, the typed `Context` (`Info`) with its
DataLoaders, and the `Schema` class (in `schema.app`; served as `api.schema.schema`)."""
