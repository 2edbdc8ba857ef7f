"""Keyword options -> ferry's run options and video settings, by the flags' names.

FastVideo's and diffusers' keyword names map onto ferry's flags; any other run option
is accepted by its flag's name with underscores (``prefetch_depth=2`` is
``--prefetch-depth 2``). Values go through the same parser and checks as the command line.
"""
from ._native import FerryValueError, check, encode, lib


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def max_memory_text(value):
    """{0: "6GiB", "cpu": "20GiB"} (accelerate's max_memory) -> "0=6GiB,cpu=20GiB"."""
    if isinstance(value, dict):
        parts = []
        for key, size in value.items():
            key = str(key)
            if key.startswith("cuda:"):
                key = key[5:]
            parts.append(f"{key}={size}")
        return ",".join(parts)
    return str(value)


# FastVideo names with no ferry flag of their own, and what they mean here.
def _fastvideo(name, value):
    if name in ("num_gpus", "tp_size", "sp_size"):
        if value in (None, 1, -1):
            return None
        raise FerryValueError(f"{name}={value}: one ferry process drives one device: for several, use "
                              "device_map=\"balanced\" or \"auto\" with max_memory={0: ..., 1: ...}, or mpirun -np N "
                              "with use_fsdp_inference=True", "invalid")
    return ()


class RunOptions:
    """An fy_run_options owned by Python."""

    def __init__(self, **options):
        self._ptr = lib.fy_run_options_new()
        if not self._ptr:
            raise MemoryError("ferry: out of memory for the run options")
        self._keep = []  # the option strings the struct borrows (--trace)
        for name, value in options.items():
            self.set(name, value)

    def set(self, name, value):
        if value is None:
            return
        if _fastvideo(name, value) != ():
            return
        if name == "max_memory":
            value = max_memory_text(value)
        text = encode(_text(value))
        self._keep.append(text)
        check(lib.fy_run_options_set(self._ptr, encode(name), text))

    def validate(self):
        check(lib.fy_run_options_validate(self._ptr))

    @property
    def ptr(self):
        return self._ptr

    def __del__(self):
        if getattr(self, "_ptr", None):
            lib.fy_run_options_free(self._ptr)
            self._ptr = None


class Params:
    """An fy_wan_t2v_params owned by Python; the strings it borrows are kept here."""

    _new, _set, _free = "fy_wan_t2v_params_new", "fy_wan_t2v_params_set", "fy_wan_t2v_params_free"

    def __init__(self, **settings):
        self._ptr = getattr(lib, self._new)()
        if not self._ptr:
            raise MemoryError("ferry: out of memory for the video settings")
        self._keep = []
        for name, value in settings.items():
            self.set(name, value)

    def set(self, name, value):
        if value is None:
            return
        text = encode(_text(value))
        self._keep.append(text)
        check(getattr(lib, self._set)(self._ptr, encode(name), text))

    @property
    def ptr(self):
        return self._ptr

    def __del__(self):
        if getattr(self, "_ptr", None):
            getattr(lib, self._free)(self._ptr)
            self._ptr = None



class FluxParams(Params):
    """An fy_flux_params owned by Python (an image's settings)."""

    _new, _set, _free = "fy_flux_params_new", "fy_flux_params_set", "fy_flux_params_free"
