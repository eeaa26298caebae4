"""Raw frames into the encoder's stdin pipe, by reference where Linux allows it (``vmsplice``).

A 1080p yuv420p frame is 3.1 MB. ``write`` copies it into the pipe, and the
encoder copies it out again; ``vmsplice(2)`` instead hands the pipe references
to the frame's own pages, and the encoder's ``read`` copies straight from
them. Measured here (2 vCPUs, 1080p frames to a reader that discards them):
0.67-0.75 ms of the writer's CPU a frame with ``write``, 0.16 ms with
``vmsplice`` (``bench/render.py`` shows what it does for a whole render).

The price is that a frame's buffer must not change, nor its memory be freed
and reused, until the encoder has read it: the pipe holds references, not a
copy. So a ``FramePipe`` keeps every buffer it was handed alive until
``release()``, which comes after the encoder has exited; and drawing rotates
through buffers. The pipe holds at most its capacity
in bytes, so once a frame has been handed over completely, at most
``capacity`` bytes of it and of the frames before it are still unread, and
drawing may reuse a buffer last handed over ``in_flight`` frames ago
(``FramePipe.buffers``). Where ``vmsplice`` is refused (not Linux, or a kernel
or sandbox without it) the frames are written with ``write``, one buffer is
enough, and nothing else changes.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import math
import os

import numpy as np

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux's fcntl.h values, where Python lacks the names
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
WIDE_PIPE = 1 << 20  # a 3 MB frame crosses in 3 hand-overs, not 48 (the default pipe holds 64 KiB)


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def _load_vmsplice():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.vmsplice
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.POINTER(_IoVec), ctypes.c_ulong, ctypes.c_uint]
    function.restype = ctypes.c_ssize_t
    return function


_VMSPLICE = _load_vmsplice()
_REFUSED = {errno.ENOSYS, errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP, errno.EBADF}


class FramePipe:
    """The write end of a pipe to an encoder: ``write(buffer)`` hands one whole frame over."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, WIDE_PIPE)
        except OSError:  # above /proc/sys/fs/pipe-max-size: the default works, a little slower
            pass
        try:
            self.capacity = fcntl.fcntl(fd, F_GETPIPE_SZ)
        except OSError:  # not a pipe (a file, in a test): nothing is held by reference
            self.capacity = 0
        self.by_reference = _VMSPLICE is not None and self.capacity > 0
        self._held: dict[int, np.ndarray] = {}  # buffers the pipe may still reference, kept from being freed

    def buffers(self, frame_bytes: int) -> int:
        """How many frame buffers drawing must rotate through so that none is changed while the pipe holds it."""
        if not self.by_reference:
            return 1
        return 2 + math.ceil(self.capacity / frame_bytes)

    def write(self, buffer: np.ndarray) -> None:
        """Hand ``buffer`` (C-contiguous bytes) over whole; BrokenPipeError if the encoder has gone."""
        view = memoryview(buffer).cast("B")
        if self.by_reference:
            self._held[id(buffer)] = buffer
            done = self._splice(buffer.ctypes.data, len(view))
            if done == len(view):
                return
            view = view[done:]  # vmsplice refused before the first byte: the rest by write
        while view:
            view = view[os.write(self.fd, view):]

    def release(self) -> None:
        """Let the buffers go: call once the encoder has exited (it has read, or will never read, the rest)."""
        self._held.clear()

    def _splice(self, address: int, length: int) -> int:
        """vmsplice until done; the bytes handed over (fewer only if the kernel refuses it, which then sticks)."""
        done = 0
        while done < length:
            vector = _IoVec(address + done, length - done)
            count = _VMSPLICE(self.fd, ctypes.byref(vector), 1, 0)
            if count >= 0:
                done += count
                continue
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            if code in _REFUSED and done == 0:
                self.by_reference = False
                return 0
            raise OSError(code, os.strerror(code))  # EPIPE becomes BrokenPipeError
        return done
