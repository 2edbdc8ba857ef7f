"""libferry.so through ctypes: finding it, the function prototypes, errors."""
import ctypes
import ctypes.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))

# fy_status values (include/ferry/error.h).
FY_OK = 0
FY_ERR_INVALID = 1
FY_ERR_INTERRUPTED = 10


class FerryError(RuntimeError):
    """An error from the engine: ferry's one-line message; .status names its kind ("io", "budget", ...)."""

    def __init__(self, message, status="internal"):
        super().__init__(message)
        self.status = status


class FerryValueError(FerryError, ValueError):
    """Bad input (an option, a size, a setting): the message names it and the fix."""


def _candidates():
    env = os.environ.get("FERRY_LIBRARY")
    if env:
        yield env
    for name in sorted(os.listdir(_HERE)):
        if name.startswith("libferry.so"):
            yield os.path.join(_HERE, name)
    record = os.path.join(_HERE, "_libdir.txt")  # written by cmake --install
    if os.path.exists(record):
        with open(record, encoding="utf-8") as f:
            yield os.path.normpath(os.path.join(_HERE, f.read().strip(), "libferry.so"))
    found = ctypes.util.find_library("ferry")
    if found:
        yield found
    yield "libferry.so"


def _load():
    errors = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            errors.append(f"{path}: no such file")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(str(e))
    raise ImportError("ferry: cannot load libferry.so (" + "; ".join(errors) + "): build it "
                      "(cmake --build build --target ferry_shared) and set FERRY_LIBRARY=build/libferry.so, "
                      "or install it (cmake --install build)")


lib, _path = _load()

c_p = ctypes.c_void_p
c_str = ctypes.c_char_p

STAGE_FN = ctypes.CFUNCTYPE(None, c_p, c_str)
STEP_FN = ctypes.CFUNCTYPE(None, c_p, ctypes.c_int, ctypes.c_int, ctypes.c_double)
TENSOR_FN = ctypes.CFUNCTYPE(None, c_p, c_str, ctypes.POINTER(ctypes.c_float), ctypes.c_int,
                             ctypes.POINTER(ctypes.c_int64))
IDS_FN = ctypes.CFUNCTYPE(None, c_p, c_str, ctypes.POINTER(ctypes.c_int64), ctypes.c_int64)
STOP_FN = ctypes.CFUNCTYPE(ctypes.c_bool, c_p)


class Hooks(ctypes.Structure):
    """fy_wan_t2v_hooks (include/ferry/wan_t2v.h): keep in step with it."""
    _fields_ = [("user", c_p), ("stage", STAGE_FN), ("step", STEP_FN), ("tensor", TENSOR_FN),
                ("ids", IDS_FN), ("should_stop", STOP_FN)]


class ResultHead(ctypes.Structure):
    """The first fields of fy_wan_t2v_result (the rest is read through fy_wan_t2v_result_json)."""
    _fields_ = [("video", ctypes.POINTER(ctypes.c_float)), ("frames", ctypes.c_int64),
                ("height", ctypes.c_int64), ("width", ctypes.c_int64)]


class FluxHooks(ctypes.Structure):
    """fy_flux_hooks (include/ferry/flux_t2i.h): keep in step with it."""
    _fields_ = [("user", c_p), ("stage", STAGE_FN), ("step", STEP_FN), ("should_stop", STOP_FN)]


class FluxResult(ctypes.Structure):
    """fy_flux_result (include/ferry/flux_t2i.h): keep in step with it."""
    _fields_ = [("image", ctypes.POINTER(ctypes.c_float)), ("height", ctypes.c_int64), ("width", ctypes.c_int64),
                ("seconds", ctypes.c_double)]


def _proto(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_proto("fy_error_message", c_str)
_proto("fy_status_name", c_str, ctypes.c_int)
_proto("fy_version", c_str)
_proto("fy_log_parse_level", ctypes.c_int, c_str, ctypes.POINTER(ctypes.c_int))
_proto("fy_log_set_level", None, ctypes.c_int)
_proto("fy_run_options_new", c_p)
_proto("fy_run_options_free", None, c_p)
_proto("fy_run_options_set", ctypes.c_int, c_p, c_str, c_str)
_proto("fy_run_options_validate", ctypes.c_int, c_p)
_proto("fy_wan_t2v_params_new", c_p)
_proto("fy_wan_t2v_params_free", None, c_p)
_proto("fy_wan_t2v_params_set", ctypes.c_int, c_p, c_str, c_str)
_proto("fy_wan_t2v_open", ctypes.c_int, c_str, c_p, ctypes.POINTER(c_p))
_proto("fy_wan_t2v_generate", ctypes.c_int, c_p, c_p, ctypes.POINTER(Hooks), c_p)
_proto("fy_wan_t2v_cancel", None, c_p)
_proto("fy_wan_t2v_close", None, c_p)
_proto("fy_wan_t2v_result_new", c_p)
_proto("fy_wan_t2v_result_delete", None, c_p)
_proto("fy_wan_t2v_result_json", c_p, c_p, c_p)
_proto("fy_wan_t2v_string_free", None, c_p)
_proto("fy_wan_t2v_save", ctypes.c_int, c_str, c_p, c_p, ctypes.c_int, ctypes.c_int)
_proto("fy_flux_params_new", c_p)
_proto("fy_flux_params_free", None, c_p)
_proto("fy_flux_params_set", ctypes.c_int, c_p, c_str, c_str)
_proto("fy_flux_t2i_open", ctypes.c_int, c_str, c_p, ctypes.POINTER(c_p))
_proto("fy_flux_t2i_generate", ctypes.c_int, c_p, c_p, ctypes.POINTER(FluxHooks), ctypes.POINTER(FluxResult))
_proto("fy_flux_t2i_cancel", None, c_p)
_proto("fy_flux_t2i_close", None, c_p)
_proto("fy_flux_result_free", None, ctypes.POINTER(FluxResult))
_proto("fy_flux_t2i_save", ctypes.c_int, c_str, ctypes.POINTER(FluxResult), c_p, STOP_FN, c_p)
_proto("fy_video_to_u8_round", None, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
       ctypes.POINTER(ctypes.c_uint8))


def error(status):
    """The exception for a failed call: the calling thread's last message."""
    message = (lib.fy_error_message() or b"").decode("utf-8", "replace") or "failed (no message)"
    name = (lib.fy_status_name(status) or b"internal").decode()
    cls = FerryValueError if status == FY_ERR_INVALID else FerryError
    return cls(message, name)


def check(status):
    if status != FY_OK:
        raise error(status)


def encode(text):
    return text.encode("utf-8") if isinstance(text, str) else text


def version():
    return lib.fy_version().decode()


def library_path():
    """The libferry.so this module loaded."""
    return _path


def set_log_level(level):
    """ferry's log level on stderr: "error", "warn", "info" (default), "debug" or "trace"."""
    value = ctypes.c_int()
    if lib.fy_log_parse_level(encode(level), ctypes.byref(value)) != 0:
        raise FerryValueError(f"log level {level!r}: use error, warn, info, debug or trace", "invalid")
    lib.fy_log_set_level(value.value)
