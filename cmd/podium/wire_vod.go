package main

import "flag"

// registerVodFlags adds the vod part's flags (owned by the vod engineer).
func registerVodFlags(fs *flag.FlagSet) {}

// wireVod builds the vod part into a (owned by the vod engineer).
func wireVod(a *app) error { return nil }
