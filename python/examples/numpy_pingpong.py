"""Two Python processes share a NumPy array and signal each other with
events; prints what a set + wait round trip between them costs.

    python3 python/examples/numpy_pingpong.py [ROUNDS]

(Pin both processes to one CPU, `taskset -c 0`, for a stable figure.)"""

import os
import subprocess
import sys
import time

import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import objmgr  # noqa: E402

NAME = f"Local\\numpy-pingpong-{os.getpid()}"


def partner(name: str, rounds: int) -> None:
    view = objmgr.Section.open(name).map()
    counter = numpy.frombuffer(view, dtype=numpy.int64, count=1)
    ping, pong = objmgr.Event.open(name + ".ping"), objmgr.Event.open(name + ".pong")
    for _ in range(rounds):
        ping.wait()
        counter[0] += 1  # the other process sees this without a copy
        pong.set()


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    section = objmgr.Section.create(NAME, 4096)
    view = section.map()
    counter = numpy.frombuffer(view, dtype=numpy.int64, count=1)
    ping = objmgr.Event.create(NAME + ".ping")
    pong = objmgr.Event.create(NAME + ".pong")
    child = subprocess.Popen([sys.executable, __file__, "--partner", NAME, str(rounds)])
    start = time.perf_counter()
    for _ in range(rounds):
        ping.set()
        pong.wait()
    elapsed = time.perf_counter() - start
    child.wait()
    assert counter[0] == rounds, counter[0]
    print(f"{rounds} round trips, {elapsed / rounds * 1e6:.2f} µs each (set + wait, both ways)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--partner":
        partner(sys.argv[2], int(sys.argv[3]))
    else:
        main()
