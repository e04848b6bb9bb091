package main

import "flag"

// registerRecorderFlags adds the recorder part's flags (owned by the recorder engineer).
func registerRecorderFlags(fs *flag.FlagSet) {}

// wireRecorder builds the recorder part into a (owned by the recorder engineer).
func wireRecorder(a *app) error { return nil }
