"""The media library: assets, collections, search, sharing, lineage and the constellation map."""
