"""``python -m action``: the GitHub Action's step (see action.runner.main)."""

from action.runner.main import main

main()
