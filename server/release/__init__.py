"""Release logic: turn a request into a validated release and see it through to the remote."""
