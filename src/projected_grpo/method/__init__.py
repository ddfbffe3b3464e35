"""The method (SPEC §3-4): the hack basis, its extraction and the projection."""
