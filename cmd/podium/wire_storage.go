package main

import "flag"

// registerStorageFlags adds the storage part's flags (owned by the storage engineer).
func registerStorageFlags(fs *flag.FlagSet) {}

// wireStorage builds the storage part into a (owned by the storage engineer).
func wireStorage(a *app) error { return nil }
