"""Who may release: PGP signatures on manifests, OIDC bearer tokens, and RBAC policies."""
