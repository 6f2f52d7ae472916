"""``kuberpult-client``: Kuberpult's Go client's flags, messages and exit codes."""
