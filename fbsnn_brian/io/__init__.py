"""Plain data in and out: recordings, weights, data sets, checkpoints, Neo and NWB."""
