"""The steps of the example project: small programs that read and write files."""

import pathlib
import sys


def greet(who: str, out: str) -> None:
    path = pathlib.Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"hello, {who}\n")


def shout(src: str, out: str) -> None:
    path = pathlib.Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pathlib.Path(src).read_text().upper())


if __name__ == "__main__":
    step, *args = sys.argv[1:]
    {"greet": greet, "shout": shout}[step](*args)
