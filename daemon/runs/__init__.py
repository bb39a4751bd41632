"""Runs: graphs of plugin operations. Parsing and validation naming node and port, the checks a
graph passes before anything is appended, the executor (topological, node cache, resume from
checkpoints), and reproducing runs: replay, verify, diff, lineage, fork."""
