"""The `kibitz` command (`python -m kibitz` too).

The command line is imported only when it runs: a worker process of the CPU pool starts by
importing the script that started its parent (Python's "spawn"), and that import should cost
the few modules its work needs, not the whole command line with its web and database stack."""

from __future__ import annotations


def main() -> None:
    from kibitz.cli import main as run

    run()


if __name__ == "__main__":
    main()
