"""The `ferryman` command. `ferryman worker …` loads only the worker's side (ferryman.cli_worker)."""

from __future__ import annotations

import contextlib
import sys


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        from ferryman.cli_worker import main as run
    else:
        from ferryman.cli import main as run
    with contextlib.suppress(KeyboardInterrupt):
        run()


if __name__ == "__main__":
    main()
