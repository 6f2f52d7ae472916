"""The Action's step as a script: ``python3 -I -S <action path>/action/launch.py``.

Nothing is installed for it: the Action's code uses the standard library only (HTTP in
``action/transport.py``, git and gpg as programs), so a job pays a Python start, not a
virtualenv and a pip install. ``-I`` keeps the workflow's checkout (the working directory,
``PYTHONPATH``, a user site) off ``sys.path`` and ``-S`` every site-packages directory (so a
third-party import would fail in the tests too); this file puts the Action's own directory
first, and the directory the install step filled when the OAuth input needs requests-oauthlib.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
_DEPS = os.environ.get("KUBERPULT_LITE_ACTION_DEPS", "")
if os.environ.get("INPUT_OAUTH_TOKEN_URL") and _DEPS and Path(_DEPS).is_dir():
    sys.path.insert(1, _DEPS)

from action.runner.main import main  # noqa: E402 - after the path is set

main()
