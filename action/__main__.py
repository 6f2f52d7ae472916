"""``python -m action``: the Action's step from an installed distribution (the Action itself runs
``action/launch.py``, which needs nothing installed; see action.runner.main)."""

from action.runner.main import main

main()
