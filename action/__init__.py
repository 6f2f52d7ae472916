"""Client side of kuberpult-lite: the release client shared by the CLI and the GitHub Action."""
