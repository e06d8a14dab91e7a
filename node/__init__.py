"""The running node: configuration, network initialisation, the consensus shell, the API and the devnet."""
