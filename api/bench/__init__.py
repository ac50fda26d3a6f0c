"""`studio bench`: figures for the API's own cost (`run.main` runs them all)."""
