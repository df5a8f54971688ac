"""The parcels project's own feature jobs."""
