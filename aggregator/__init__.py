"""feedhub's collecting side: config, the shared store, fetch, parse, normalise, collect."""
