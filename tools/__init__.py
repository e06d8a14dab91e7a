"""Tools around a running network: network initialisation (netinit), the local devnet supervisor
(devnet), the scripted compliance-year demo (demo), the benchmarks (bench/) and the tree's structure
check run by `make lint` (check_structure)."""
