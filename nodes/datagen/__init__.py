"""Demo and benchmark data: synthetic registries and readings, the devnet genesis. Not part of the library."""
