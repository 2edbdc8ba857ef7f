"""One loaded model making videos: the part both API styles share."""
import ctypes
import json
import signal
import threading

from ._native import (FY_ERR_INTERRUPTED, FY_OK, FerryError, Hooks, IDS_FN, ResultHead, STAGE_FN, STEP_FN,
                      STOP_FN, TENSOR_FN, check, encode, error, lib)
from ._options import Params


def _numpy():
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def frames_u8(raw, frames, height, width):
    """(F, H, W, 3) uint8: a NumPy array, else a list of frames, each a list of rows of RGB bytes."""
    np = _numpy()
    if np is not None:
        return np.frombuffer(raw, dtype=np.uint8).reshape(frames, height, width, 3)
    row = width * 3
    return [[raw[(f * height + y) * row:(f * height + y + 1) * row] for y in range(height)] for f in range(frames)]


def frames_f32(raw, frames, height, width):
    """(F, H, W, 3) float32 in [0, 1]: a NumPy array, else nested lists of floats."""
    np = _numpy()
    if np is not None:
        return np.frombuffer(raw, dtype=np.float32).reshape(frames, height, width, 3)
    values = memoryview(raw).cast("f")
    return [[[list(values[((f * height + y) * width + x) * 3:((f * height + y) * width + x) * 3 + 3])
              for x in range(width)] for y in range(height)] for f in range(frames)]


class Video:
    """A generated video: its frames (uint8 and float32), the settings and report, and the file written."""

    def __init__(self, u8, f32, shape, report, output_path):
        self.u8 = u8
        self.f32 = f32
        self.shape = shape
        self.report = report
        self.output_path = output_path


class Engine:
    """fy_wan_t2v_pipeline: opened once; the weights load at the first video and stay loaded."""

    def __init__(self, model, options):
        self.model = str(model)
        self._options = options  # kept alive: the pipeline copied the struct, not its strings
        handle = ctypes.c_void_p()
        check(lib.fy_wan_t2v_open(encode(self.model), options.ptr, ctypes.byref(handle)))
        self._pipe = handle.value
        self._lock = threading.Lock()

    def close(self):
        if getattr(self, "_pipe", None):
            lib.fy_wan_t2v_close(self._pipe)
            self._pipe = None

    def __del__(self):
        self.close()

    def cancel(self):
        """Stop the running video between steps (from another thread)."""
        if self._pipe:
            lib.fy_wan_t2v_cancel(self._pipe)

    def generate(self, settings, step_callback=None, output_path=None, fps=16, crf=None, want_f32=False):
        if not self._pipe:
            raise FerryError("this pipeline was closed", "invalid")
        params = Params(**settings)
        with self._lock:
            return self._run(params, step_callback, output_path, fps, crf, want_f32)

    def _run(self, params, step_callback, output_path, fps, crf, want_f32):
        state = {"sigint": False, "stop": False, "error": None}
        pipe = self._pipe

        def on_step(user, i, n, seconds):
            if step_callback is None:
                return
            try:
                if step_callback(i, n, seconds) is False:
                    state["stop"] = True
                    lib.fy_wan_t2v_cancel(pipe)
            except BaseException as e:  # raised again once the engine has stopped
                state["error"] = e
                lib.fy_wan_t2v_cancel(pipe)

        def should_stop(user):
            return state["sigint"] or state["stop"] or state["error"] is not None

        def on_sigint(sig, frame):
            # Python runs this between bytecodes: in on_step or should_stop, between steps.
            state["sigint"] = True
            lib.fy_wan_t2v_cancel(pipe)

        hooks = Hooks(None, STAGE_FN(), STEP_FN(on_step), TENSOR_FN(), IDS_FN(), STOP_FN(should_stop))
        result = lib.fy_wan_t2v_result_new()
        if not result:
            raise MemoryError("ferry: out of memory for a result")
        old = None
        if threading.current_thread() is threading.main_thread():
            old = signal.signal(signal.SIGINT, on_sigint)
        try:
            status = lib.fy_wan_t2v_generate(pipe, params.ptr, ctypes.byref(hooks), result)
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)
        try:
            if status != FY_OK:
                if state["error"] is not None:
                    raise state["error"]
                if status == FY_ERR_INTERRUPTED and state["sigint"]:
                    raise KeyboardInterrupt("ferry: stopped by the user (Ctrl-C); the model stays loaded")
                raise error(status)
            return self._collect(params, result, output_path, fps, crf, want_f32)
        finally:
            lib.fy_wan_t2v_result_delete(result)

    def _collect(self, params, result, output_path, fps, crf, want_f32):
        head = ResultHead.from_address(result)
        f, h, w = head.frames, head.height, head.width
        n = f * h * w * 3
        u8 = (ctypes.c_uint8 * n)()
        lib.fy_video_to_u8_round(head.video, n, u8)
        f32 = ctypes.string_at(head.video, n * 4) if want_f32 else None
        text = lib.fy_wan_t2v_result_json(params.ptr, result)
        if not text:
            raise MemoryError("ferry: out of memory for the report")
        try:
            report = json.loads(ctypes.string_at(text).decode("utf-8"))
        finally:
            lib.fy_wan_t2v_string_free(text)
        if output_path is not None:
            check(lib.fy_wan_t2v_save(encode(str(output_path)), result, params.ptr, int(fps),
                                      -1 if crf is None else int(crf)))
            report["output"] = str(output_path)
        return Video(bytes(u8), f32, (f, h, w, 3), report, output_path)
