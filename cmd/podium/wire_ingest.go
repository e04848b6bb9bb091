package main

import "flag"

// registerIngestFlags adds the ingest part's flags (owned by the ingest engineer).
func registerIngestFlags(fs *flag.FlagSet) {}

// wireIngest builds the ingest part into a (owned by the ingest engineer).
func wireIngest(a *app) error { return nil }
