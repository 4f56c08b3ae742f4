"""objmgr from Python, with real processes. Run by the Rust test
`python_package` (crates/cli/tests/python.rs), which provides a private
broker (OBJMGR_SOCKET, OBJMGR_BROKER) and the library (OBJMGR_WIN32_LIB)."""

import os
import subprocess
import sys
import textwrap
import time

import numpy
import pytest

import objmgr

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(code: str, *args: str) -> subprocess.Popen:
    """Starts another Python process running `code` with the package."""
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env)


def unique(name: str) -> str:
    return f"Local\\py-{name}-{os.getpid()}-{time.monotonic_ns()}"


def test_two_processes_share_a_numpy_array_and_signal_with_events():
    name = unique("frames")
    section = objmgr.Section.create(name, 4096)
    assert not section.existed
    view = section.map()
    array = numpy.frombuffer(view, dtype=numpy.float64, count=8)  # no copy
    ready = objmgr.Event.create(name + ".ready")
    done = objmgr.Event.create(name + ".done")
    child = run_child(
        """
        import sys, numpy, objmgr
        name = sys.argv[1]
        view = objmgr.Section.open(name).map()
        array = numpy.frombuffer(view, dtype=numpy.float64, count=8)
        assert objmgr.Event.open(name + ".ready").wait(10)
        array[:] = array * 2 + 1        # in place: the other process sees it
        objmgr.Event.open(name + ".done").set()
        """,
        name,
    )
    array[:] = numpy.arange(8)
    ready.set()
    assert done.wait(10)
    assert child.wait(10) == 0
    assert list(array) == [2 * i + 1 for i in range(8)]
    assert bytes(memoryview(view)[:8]) == numpy.float64(1).tobytes()
    del array
    view.close()
    section.close()
    with pytest.raises(objmgr.Win32Error) as missing:
        objmgr.Section.open(name)
    assert missing.value.winerror == 2  # ERROR_FILE_NOT_FOUND: gone with its handles


def test_a_mutex_is_a_context_manager_and_is_abandoned_when_its_owner_dies():
    name = unique("lock")
    mutex = objmgr.Mutex.create(name)
    with mutex:
        with mutex:  # recursive, as on Windows
            pass
    child = run_child(
        """
        import os, sys, objmgr
        objmgr.Mutex.open(sys.argv[1]).acquire()
        os._exit(0)                      # dies holding it
        """,
        name,
    )
    assert child.wait(10) == 0
    assert mutex.acquire(10)
    assert mutex.abandoned
    mutex.release()
    with pytest.raises(objmgr.Win32Error) as not_owner:
        mutex.release()
    assert not_owner.value.winerror == 288  # ERROR_NOT_OWNER


def test_semaphores_waits_on_many_and_timers():
    slots = objmgr.Semaphore.create(unique("slots"), initial=1, maximum=2)
    assert slots.wait(0)
    assert not slots.wait(0.01)
    assert slots.release(2) == 0
    with pytest.raises(objmgr.Win32Error) as over:
        slots.release()
    assert over.value.winerror == 298  # ERROR_TOO_MANY_POSTS
    first = objmgr.Event.create()
    second = objmgr.Event.create(manual_reset=True)
    assert objmgr.wait_any([first, second], timeout=0.01) is None
    second.set()
    assert objmgr.wait_any([first, second], timeout=1) == 1
    assert not objmgr.wait_all([first, second], timeout=0.01)
    first.set()
    assert objmgr.wait_all([first, second], timeout=1)
    timer = objmgr.WaitableTimer.create()
    timer.set(0.02)
    start = time.monotonic()
    assert timer.wait(5)
    assert time.monotonic() - start >= 0.015


def test_errors_carry_the_win32_code_and_message():
    with pytest.raises(objmgr.Win32Error) as error:
        objmgr.Event.open(unique("missing"))
    assert error.value.winerror == 2
    assert "cannot find the file" in error.value.message
    with pytest.raises(objmgr.Win32Error) as bad:
        objmgr.Section.create(None, 0)
    assert bad.value.winerror == 87
    name = unique("twice")
    a = objmgr.Event.create(name)
    b = objmgr.Event.create(name)
    assert not a.existed and b.existed
