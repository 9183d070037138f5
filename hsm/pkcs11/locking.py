"""Initialise a PKCS#11 module for use from many threads (CKF_OS_LOCKING_OK).

python-pkcs11 calls ``C_Initialize(NULL)``, which tells the module that the application
will never call it from two threads at once. SoftHSM2 then uses no mutexes, and two
threads signing at the same time crash the process (SIGSEGV, seen in 3 of 3 runs).
python-pkcs11 has no option for this, so after it has loaded the module we finalise it and
initialise it again ourselves, through the module's own function list, with
CKF_OS_LOCKING_OK. No session exists at that point, so nothing is lost.

That reaches python-pkcs11's copy of the module only when the module hands every caller the
same function list (SoftHSM2 and HSM vendors' libraries do). p11-kit's client
(p11-kit-client.so, remoting a token served by `p11-kit server`) makes a new module instance
for each C_GetFunctionList call: finalising "ours" would touch an instance nobody uses (p11-kit
complains on stderr), and a recovery would leave python-pkcs11's instance, whose connection
died, as it was. For such a module python-pkcs11's own instance is finalised and initialised
again (C_Initialize(NULL)); p11-kit's client locks its connection itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Any

from pkcs11 import exceptions as p11e

CKR_OK = 0x000
CKR_CRYPTOKI_NOT_INITIALIZED = 0x190
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
CKF_OS_LOCKING_OK = 0x2

_CK_RV = ctypes.c_ulong
_CK_VOID_FN = ctypes.CFUNCTYPE(_CK_RV, ctypes.c_void_p)


class _CKVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class _CKFunctionListHead(ctypes.Structure):
    # Only the first two entries of CK_FUNCTION_LIST are needed; the layout is fixed by
    # the standard for every version.
    _fields_ = [("version", _CKVersion), ("C_Initialize", _CK_VOID_FN), ("C_Finalize", _CK_VOID_FN)]


class _CKInitializeArgs(ctypes.Structure):
    _fields_ = [
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("pReserved", ctypes.c_void_p),
    ]


class ModuleInitializer:
    """Finalises and initialises one PKCS#11 module with OS locking.

    The module is opened by path; the dynamic loader hands back the same loaded copy that
    python-pkcs11 uses, so both see one module state. There is one initializer per module
    path in a process (`for_module`): a module has one initialisation state, shared by
    every key store that uses it.
    """

    _instances: dict[str, ModuleInitializer] = {}
    _instances_lock = threading.Lock()

    @classmethod
    def for_module(cls, module_path: str, lib: Any) -> ModuleInitializer:
        """The process-wide initializer of the module at `module_path`, loaded by python-pkcs11 as `lib`."""
        with cls._instances_lock:
            instance = cls._instances.get(module_path)
            if instance is None:
                instance = cls._instances[module_path] = cls(module_path, lib)
            return instance

    def __init__(self, module_path: str, lib: Any) -> None:
        """Load the module's function list.

        Args:
            module_path: path of the PKCS#11 shared library.
            lib: python-pkcs11's `pkcs11.lib` of the same module.
        """
        self._lib = lib
        self._dll = ctypes.CDLL(module_path)
        get_function_list = self._dll.C_GetFunctionList
        get_function_list.restype = _CK_RV
        get_function_list.argtypes = [ctypes.POINTER(ctypes.POINTER(_CKFunctionListHead))]
        self._functions = ctypes.POINTER(_CKFunctionListHead)()
        again = ctypes.POINTER(_CKFunctionListHead)()
        for target in (self._functions, again):
            rv = get_function_list(ctypes.byref(target))
            if rv != CKR_OK:
                raise OSError(f"C_GetFunctionList of {module_path} returned 0x{rv:x}")
        # One function list for every caller, or a new instance each time (p11-kit's client)?
        self.shared_instance = ctypes.addressof(self._functions.contents) == ctypes.addressof(again.contents)
        self._lock = threading.Lock()
        self._with_os_locking = False

    def ensure_initialized(self) -> None:
        """Initialise with OS locking unless this process has done so already (python-pkcs11's
        own initialisation stands for a module that gives each caller its own instance)."""
        with self._lock:
            if self.shared_instance and not self._with_os_locking:
                self._reinitialize()

    def reinitialize(self) -> None:
        """Finalise and initialise again (recovery): every session of the module ends.

        Raises:
            OSError: the module refused to initialise.
        """
        with self._lock:
            self._reinitialize()

    def _reinitialize(self) -> None:
        if not self.shared_instance:
            with contextlib.suppress(p11e.PKCS11Error):  # e.g. its connection is gone already
                self._lib.finalize()
            try:
                self._lib.initialize()
            except p11e.PKCS11Error as exc:
                raise OSError(f"C_Initialize failed ({type(exc).__name__})") from exc
            return
        self._with_os_locking = False
        functions = self._functions.contents
        rv = functions.C_Finalize(None)
        if rv not in (CKR_OK, CKR_CRYPTOKI_NOT_INITIALIZED):
            raise OSError(f"C_Finalize returned 0x{rv:x}")
        args = _CKInitializeArgs(flags=CKF_OS_LOCKING_OK)
        rv = functions.C_Initialize(ctypes.cast(ctypes.byref(args), ctypes.c_void_p))
        if rv != CKR_OK:
            raise OSError(f"C_Initialize with CKF_OS_LOCKING_OK returned 0x{rv:x}")
        self._with_os_locking = True
