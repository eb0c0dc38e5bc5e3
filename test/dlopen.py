# SPDX-License-Identifier: MIT
# dlopen.py LIB: Python's ctypes loads libvthread (no tunables, no preload) and
# runs libc's getppid as a vthread's function: its system call goes through the
# runtime, and the value comes back through vthread_join.
import ctypes
import os
import sys

lib = ctypes.CDLL(sys.argv[1])
libc = ctypes.CDLL(None)
lib.vthread_version.restype = ctypes.c_char_p
lib.vthread_backend.restype = ctypes.c_char_p
lib.vthread_backend_error.restype = ctypes.c_char_p
vt = ctypes.c_void_p()
fn = ctypes.cast(libc.getppid, ctypes.c_void_p)
err = lib.vthread_create(ctypes.byref(vt), None, fn, None)
if err:
    sys.exit(f"vthread_create: {os.strerror(err)} ({lib.vthread_backend_error().decode()})")
ret = ctypes.c_void_p()
if lib.vthread_join(vt, ctypes.byref(ret)):
    sys.exit("vthread_join failed")
print(f"libvthread {lib.vthread_version().decode()} from ctypes, backend "
      f"{lib.vthread_backend().decode()}: getppid in a vthread {ret.value}, host {os.getppid()}")
sys.exit(0 if ret.value == os.getppid() else 1)
