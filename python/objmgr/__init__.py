"""objmgr from Python: Win32 named shared memory and synchronization objects.

Every object lives in objmgr's namespace (``Global\\Name``, ``Local\\Name`` or
an unnamed one passed by handle) and lives as long as some process holds a
handle to it, also when processes crash. Failures raise :class:`Win32Error`
with the Win32 error code Windows gives in the same case.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
from ctypes import POINTER, byref, c_int, c_size_t, c_uint32, c_void_p
from typing import Optional, Sequence

__all__ = [
    "Win32Error",
    "Section",
    "View",
    "Mutex",
    "Event",
    "Semaphore",
    "WaitableTimer",
    "wait_any",
    "wait_all",
    "INFINITE",
]

INFINITE = 0xFFFFFFFF
_WAIT_OBJECT_0 = 0
_WAIT_ABANDONED_0 = 0x80
_WAIT_TIMEOUT = 0x102
_WAIT_FAILED = 0xFFFFFFFF
_ERROR_ALREADY_EXISTS = 183
PAGE_READONLY = 0x02
PAGE_READWRITE = 0x04
FILE_MAP_WRITE = 0x0002
FILE_MAP_READ = 0x0004
FILE_MAP_ALL_ACCESS = 0x000F001F
SYNCHRONIZE = 0x00100000
_EVENT_ALL_ACCESS = 0x001F0003
_MUTEX_ALL_ACCESS = 0x001F0001
_SEMAPHORE_ALL_ACCESS = 0x001F0003
_TIMER_ALL_ACCESS = 0x001F0003
_FORMAT_MESSAGE_FROM_SYSTEM = 0x1000
_FORMAT_MESSAGE_IGNORE_INSERTS = 0x200


def _find_library() -> str:
    """Where libobjmgr_win32.so is: $OBJMGR_WIN32_LIB, the loader, pkg-config."""
    explicit = os.environ.get("OBJMGR_WIN32_LIB")
    if explicit:
        return explicit
    found = ctypes.util.find_library("objmgr_win32")
    if found:
        return found
    try:
        libdir = subprocess.run(
            ["pkg-config", "--variable=libdir", "objmgr-win32"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        if libdir:
            return os.path.join(libdir, "libobjmgr_win32.so.0")
    except (OSError, subprocess.CalledProcessError):
        pass
    return "/usr/local/lib/libobjmgr_win32.so.0"


_lib = ctypes.CDLL(_find_library(), use_errno=True)
# The library's W functions take UTF-16 (WCHAR is 2 bytes); Python's c_wchar_p
# is 4 bytes on Linux, so names are passed as UTF-16 buffers.
_HANDLE = c_void_p


def _fn(name: str, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_GetLastError = _fn("GetLastError", c_uint32)
_CloseHandle = _fn("CloseHandle", c_int, _HANDLE)
_FormatMessageA = _fn(
    "FormatMessageA", c_uint32, c_uint32, c_void_p, c_uint32, c_uint32, ctypes.c_char_p, c_uint32, c_void_p
)
_CreateFileMappingW = _fn(
    "CreateFileMappingW", _HANDLE, _HANDLE, c_void_p, c_uint32, c_uint32, c_uint32, c_void_p
)
_OpenFileMappingW = _fn("OpenFileMappingW", _HANDLE, c_uint32, c_int, c_void_p)
_MapViewOfFile = _fn("MapViewOfFile", c_void_p, _HANDLE, c_uint32, c_uint32, c_uint32, c_size_t)
_UnmapViewOfFile = _fn("UnmapViewOfFile", c_int, c_void_p)
_CreateMutexW = _fn("CreateMutexW", _HANDLE, c_void_p, c_int, c_void_p)
_OpenMutexW = _fn("OpenMutexW", _HANDLE, c_uint32, c_int, c_void_p)
_ReleaseMutex = _fn("ReleaseMutex", c_int, _HANDLE)
_CreateEventW = _fn("CreateEventW", _HANDLE, c_void_p, c_int, c_int, c_void_p)
_OpenEventW = _fn("OpenEventW", _HANDLE, c_uint32, c_int, c_void_p)
_SetEvent = _fn("SetEvent", c_int, _HANDLE)
_ResetEvent = _fn("ResetEvent", c_int, _HANDLE)
_PulseEvent = _fn("PulseEvent", c_int, _HANDLE)
_CreateSemaphoreW = _fn("CreateSemaphoreW", _HANDLE, c_void_p, ctypes.c_int32, ctypes.c_int32, c_void_p)
_OpenSemaphoreW = _fn("OpenSemaphoreW", _HANDLE, c_uint32, c_int, c_void_p)
_ReleaseSemaphore = _fn("ReleaseSemaphore", c_int, _HANDLE, ctypes.c_int32, POINTER(ctypes.c_int32))
_CreateWaitableTimerW = _fn("CreateWaitableTimerW", _HANDLE, c_void_p, c_int, c_void_p)
_OpenWaitableTimerW = _fn("OpenWaitableTimerW", _HANDLE, c_uint32, c_int, c_void_p)
_SetWaitableTimer = _fn(
    "SetWaitableTimer", c_int, _HANDLE, POINTER(ctypes.c_int64), ctypes.c_int32, c_void_p, c_void_p, c_int
)
_CancelWaitableTimer = _fn("CancelWaitableTimer", c_int, _HANDLE)
_WaitForSingleObject = _fn("WaitForSingleObject", c_uint32, _HANDLE, c_uint32)
_WaitForMultipleObjects = _fn("WaitForMultipleObjects", c_uint32, c_uint32, POINTER(_HANDLE), c_int, c_uint32)


class Win32Error(OSError):
    """A failure, with the Win32 error code (``winerror``) Windows gives."""

    def __init__(self, winerror: int, what: str = ""):
        buf = ctypes.create_string_buffer(512)
        n = _FormatMessageA(
            _FORMAT_MESSAGE_FROM_SYSTEM | _FORMAT_MESSAGE_IGNORE_INSERTS, None, winerror, 0, buf, len(buf), None
        )
        message = buf.value[:n].decode("utf-8", "replace").strip() if n else "Unknown error."
        super().__init__(f"{what}: {message} (Win32 error {winerror})" if what else message)
        self.winerror = winerror
        self.message = message


def _name(name: Optional[str]):
    """A name as the W functions take it: NUL-terminated UTF-16, or NULL."""
    if name is None:
        return None
    data = (name + "\0").encode("utf-16-le")
    return ctypes.create_string_buffer(data, len(data))


def _ms(timeout: Optional[float]) -> int:
    if timeout is None:
        return INFINITE
    if timeout < 0:
        raise ValueError("timeout must not be negative")
    return min(int(timeout * 1000), INFINITE - 1)


def _check_handle(handle, what: str):
    if not handle:
        raise Win32Error(_GetLastError(), what)
    return handle


def _check(ok, what: str) -> None:
    if not ok:
        raise Win32Error(_GetLastError(), what)


class _Handle:
    """An objmgr handle: closed by :meth:`close`, a ``with`` block, or when
    garbage-collected. ``existed`` says whether a create found the name
    taken (Windows' ``ERROR_ALREADY_EXISTS``)."""

    _handle: Optional[int] = None
    existed: bool = False

    def _adopt(self, handle, created: bool = False) -> None:
        self._handle = handle
        self.existed = created and _GetLastError() == _ERROR_ALREADY_EXISTS

    @property
    def handle(self) -> int:
        """The handle value, as a Windows ``HANDLE``."""
        if self._handle is None:
            raise Win32Error(6, "the handle is closed")
        return self._handle

    def close(self) -> None:
        """``CloseHandle``: the object dies with its last handle."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            _check(_CloseHandle(handle), "CloseHandle")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def wait(self, timeout: Optional[float] = None) -> bool:
        """``WaitForSingleObject``: True when signaled (or, for a mutex,
        acquired), False on timeout (seconds; None waits for ever)."""
        result = _WaitForSingleObject(self.handle, _ms(timeout))
        if result == _WAIT_FAILED:
            raise Win32Error(_GetLastError(), "WaitForSingleObject")
        return result != _WAIT_TIMEOUT


class _ViewMethods:
    """What a view does besides being a buffer (see :class:`View`)."""

    address: int
    writable: bool

    @property
    def size(self) -> int:
        return len(self)

    def close(self) -> None:
        """``UnmapViewOfFile``. Afterwards the view and every buffer made
        from it (memoryview, numpy array) must no longer be used."""
        if self.address:
            address, self.address = self.address, 0
            _check(_UnmapViewOfFile(address), "UnmapViewOfFile")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_view_types: dict = {}


def _view(address: int, size: int, writable: bool) -> "View":
    """A view over `size` bytes at `address`: a ctypes byte array (which is
    what gives it the buffer protocol on every Python 3) with the view's
    methods."""
    view_type = _view_types.get(size)
    if view_type is None:
        view_type = type("View", (ctypes.c_ubyte * size, _ViewMethods), {"__module__": __name__})
        _view_types[size] = view_type
    view = view_type.from_address(address)
    view.address = address
    view.writable = writable
    return view


# The type views have, for annotations: a buffer of bytes with close().
View = _ViewMethods

class Section(_Handle):
    """A file-mapping object over memory ("the paging file")."""

    @classmethod
    def create(cls, name: Optional[str], size: int, *, read_only: bool = False) -> "Section":
        """``CreateFileMapping(INVALID_HANDLE_VALUE, ...)``; opens the section
        if the name exists already (then ``existed`` is True)."""
        if size <= 0:
            raise Win32Error(87, "CreateFileMapping: the size must be positive")
        self = cls()
        protect = PAGE_READONLY if read_only else PAGE_READWRITE
        handle = _CreateFileMappingW(
            ctypes.c_void_p(-1 & 0xFFFFFFFFFFFFFFFF), None, protect, size >> 32, size & 0xFFFFFFFF, _name(name)
        )
        self._adopt(_check_handle(handle, f"CreateFileMapping({name!r})"), created=True)
        return self

    @classmethod
    def open(cls, name: str, access: int = FILE_MAP_ALL_ACCESS) -> "Section":
        """``OpenFileMapping``."""
        self = cls()
        self._adopt(_check_handle(_OpenFileMappingW(access, 0, _name(name)), f"OpenFileMapping({name!r})"))
        return self

    def map(self, size: int = 0, *, offset: int = 0, write: bool = True) -> View:
        """``MapViewOfFile``: ``size`` bytes from ``offset`` (0: to the end
        of the section). The view is a buffer: ``memoryview(view)`` and
        ``numpy.frombuffer(view, dtype)`` are the shared memory itself."""
        access = FILE_MAP_WRITE if write else FILE_MAP_READ
        address = _MapViewOfFile(self.handle, access, offset >> 32, offset & 0xFFFFFFFF, size)
        if not address:
            raise Win32Error(_GetLastError(), "MapViewOfFile")
        if size == 0:
            info = (ctypes.c_byte * 48)()
            _VirtualQuery(address, info, 48)
            size = ctypes.cast(info, POINTER(c_size_t))[3]  # RegionSize
        return _view(address, size, write)


_VirtualQuery = _fn("VirtualQuery", c_size_t, c_void_p, c_void_p, c_size_t)


class Mutex(_Handle):
    """A mutex: recursive, owned by a thread, abandoned when its owner dies.
    ``with mutex:`` acquires and releases it."""

    abandoned: bool = False

    @classmethod
    def create(cls, name: Optional[str] = None, initial_owner: bool = False) -> "Mutex":
        self = cls()
        self._adopt(_check_handle(_CreateMutexW(None, int(initial_owner), _name(name)), f"CreateMutex({name!r})"), True)
        return self

    @classmethod
    def open(cls, name: str) -> "Mutex":
        self = cls()
        self._adopt(_check_handle(_OpenMutexW(_MUTEX_ALL_ACCESS, 0, _name(name)), f"OpenMutex({name!r})"))
        return self

    def acquire(self, timeout: Optional[float] = None) -> bool:
        """Waits for the mutex: True when acquired (``abandoned`` then says
        whether its previous owner died holding it), False on timeout."""
        result = _WaitForSingleObject(self.handle, _ms(timeout))
        if result == _WAIT_FAILED:
            raise Win32Error(_GetLastError(), "WaitForSingleObject")
        self.abandoned = result == _WAIT_ABANDONED_0
        return result != _WAIT_TIMEOUT

    def release(self) -> None:
        """``ReleaseMutex``."""
        _check(_ReleaseMutex(self.handle), "ReleaseMutex")

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Event(_Handle):
    """An event: manual-reset (stays set) or auto-reset (one waiter per set)."""

    @classmethod
    def create(cls, name: Optional[str] = None, manual_reset: bool = False, initial_state: bool = False) -> "Event":
        self = cls()
        handle = _CreateEventW(None, int(manual_reset), int(initial_state), _name(name))
        self._adopt(_check_handle(handle, f"CreateEvent({name!r})"), True)
        return self

    @classmethod
    def open(cls, name: str) -> "Event":
        self = cls()
        self._adopt(_check_handle(_OpenEventW(_EVENT_ALL_ACCESS, 0, _name(name)), f"OpenEvent({name!r})"))
        return self

    def set(self) -> None:
        _check(_SetEvent(self.handle), "SetEvent")

    def reset(self) -> None:
        _check(_ResetEvent(self.handle), "ResetEvent")

    def pulse(self) -> None:
        _check(_PulseEvent(self.handle), "PulseEvent")


class Semaphore(_Handle):
    """A counting semaphore with a maximum."""

    @classmethod
    def create(cls, name: Optional[str] = None, initial: int = 0, maximum: int = 1) -> "Semaphore":
        self = cls()
        handle = _CreateSemaphoreW(None, initial, maximum, _name(name))
        self._adopt(_check_handle(handle, f"CreateSemaphore({name!r})"), True)
        return self

    @classmethod
    def open(cls, name: str) -> "Semaphore":
        self = cls()
        self._adopt(_check_handle(_OpenSemaphoreW(_SEMAPHORE_ALL_ACCESS, 0, _name(name)), f"OpenSemaphore({name!r})"))
        return self

    def release(self, count: int = 1) -> int:
        """``ReleaseSemaphore``: the count before."""
        previous = ctypes.c_int32()
        _check(_ReleaseSemaphore(self.handle, count, byref(previous)), "ReleaseSemaphore")
        return previous.value


class WaitableTimer(_Handle):
    """A waitable timer: signaled when due, once or periodically."""

    @classmethod
    def create(cls, name: Optional[str] = None, manual_reset: bool = False) -> "WaitableTimer":
        self = cls()
        self._adopt(_check_handle(_CreateWaitableTimerW(None, int(manual_reset), _name(name)), "CreateWaitableTimer"), True)
        return self

    @classmethod
    def open(cls, name: str) -> "WaitableTimer":
        self = cls()
        self._adopt(_check_handle(_OpenWaitableTimerW(_TIMER_ALL_ACCESS, 0, _name(name)), f"OpenWaitableTimer({name!r})"))
        return self

    def set(self, due: float, period: float = 0.0) -> None:
        """Due ``due`` seconds from now, then every ``period`` seconds."""
        relative = ctypes.c_int64(-max(1, int(due * 10_000_000)))
        _check(_SetWaitableTimer(self.handle, byref(relative), int(period * 1000), None, None, 0), "SetWaitableTimer")

    def cancel(self) -> None:
        _check(_CancelWaitableTimer(self.handle), "CancelWaitableTimer")


def _wait(objects: Sequence[_Handle], all_: bool, timeout: Optional[float]) -> int:
    if not 0 < len(objects) <= 64:
        raise Win32Error(87, "WaitForMultipleObjects: 1 to 64 objects")
    handles = (_HANDLE * len(objects))(*[o.handle for o in objects])
    result = _WaitForMultipleObjects(len(objects), handles, int(all_), _ms(timeout))
    if result == _WAIT_FAILED:
        raise Win32Error(_GetLastError(), "WaitForMultipleObjects")
    return result


def wait_any(objects: Sequence[_Handle], timeout: Optional[float] = None) -> Optional[int]:
    """The index of a signaled object (acquired, for mutexes and
    semaphores), or None on timeout."""
    result = _wait(objects, False, timeout)
    if result == _WAIT_TIMEOUT:
        return None
    return result - (_WAIT_ABANDONED_0 if result >= _WAIT_ABANDONED_0 else _WAIT_OBJECT_0)


def wait_all(objects: Sequence[_Handle], timeout: Optional[float] = None) -> bool:
    """Waits until every object is signaled, all taken at once; False on timeout."""
    return _wait(objects, True, timeout) != _WAIT_TIMEOUT
