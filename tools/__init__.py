"""Developer tooling: benchmarks, servers, load scripts and doc generators (not part of the rnnviz package)."""
