"""Media: our stored copies of generated files, signed links to them, and their types."""
