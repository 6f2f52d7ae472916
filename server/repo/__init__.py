"""The manifest repository: git, the safe tree, Kuberpult's layout and the exporter."""
