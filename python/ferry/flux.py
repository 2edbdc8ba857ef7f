"""diffusers' FluxPipeline: from_pretrained(path), the offload switches, pipe(prompt=...).images[0]."""
import ctypes
import os
import signal
import threading

from ._engine import _numpy
from ._native import (FY_ERR_INTERRUPTED, FY_OK, FerryError, FerryValueError, FluxHooks, FluxResult, STAGE_FN,
                      STEP_FN, STOP_FN, check, encode, error, lib)
from ._options import FluxParams
from .diffusers import OffloadSwitches, _seed_of


def _pil():
    try:
        from PIL import Image as PILImage
    except ImportError:
        return None
    return PILImage


class Image:
    """A generated image when Pillow is not installed, with the calls a PIL image offers:
    ``size``, ``width``, ``height``, ``mode``, ``tobytes()`` (RGB rows) and ``save(path)``, which
    writes the PNG ``ferry generate`` writes for the same settings, byte for byte."""

    mode = "RGB"

    def __init__(self, rgb, f32, width, height, settings):
        self._rgb = rgb
        self._f32 = f32
        self.width = width
        self.height = height
        self._settings = settings

    @property
    def size(self):
        return (self.width, self.height)

    def tobytes(self):
        return self._rgb

    def rows(self):
        """The image as a list of rows of RGB bytes."""
        row = self.width * 3
        return [self._rgb[y * row:(y + 1) * row] for y in range(self.height)]

    def save(self, path, format=None):
        if format not in (None, "PNG", "png") or not os.fspath(path).lower().endswith(".png"):
            raise FerryValueError(f"{os.fspath(path)}: ferry writes images as PNG (install Pillow for other formats)",
                                  "invalid")
        buf = ctypes.create_string_buffer(self._f32, len(self._f32))
        result = FluxResult(ctypes.cast(buf, ctypes.POINTER(ctypes.c_float)), self.height, self.width, 0.0)
        params = FluxParams(**self._settings)
        check(lib.fy_flux_t2i_save(encode(os.fspath(path)), ctypes.byref(result), params.ptr, STOP_FN(), None))


class FluxEngine:
    """fy_flux_pipeline: opened once; the weights load at the first image and stay loaded."""

    def __init__(self, model, options):
        self.model = str(model)
        self._options = options
        handle = ctypes.c_void_p()
        check(lib.fy_flux_t2i_open(encode(self.model), options.ptr, ctypes.byref(handle)))
        self._pipe = handle.value
        self._lock = threading.Lock()

    def close(self):
        if getattr(self, "_pipe", None):
            lib.fy_flux_t2i_close(self._pipe)
            self._pipe = None

    def __del__(self):
        self.close()

    def cancel(self):
        if self._pipe:
            lib.fy_flux_t2i_cancel(self._pipe)

    def generate(self, settings, step_callback=None):
        """(rgb bytes, float32 bytes, width, height) of one image."""
        if not self._pipe:
            raise FerryError("this pipeline was closed", "invalid")
        params = FluxParams(**settings)
        with self._lock:
            return self._run(params, step_callback)

    def _run(self, params, step_callback):
        state = {"sigint": False, "stop": False, "error": None}
        pipe = self._pipe

        def on_step(user, i, n, seconds):
            if step_callback is None:
                return
            try:
                if step_callback(i, n, seconds) is False:
                    state["stop"] = True
                    lib.fy_flux_t2i_cancel(pipe)
            except BaseException as e:  # raised again once the engine has stopped
                state["error"] = e
                lib.fy_flux_t2i_cancel(pipe)

        def should_stop(user):
            return state["sigint"] or state["stop"] or state["error"] is not None

        def on_sigint(sig, frame):
            state["sigint"] = True
            lib.fy_flux_t2i_cancel(pipe)

        hooks = FluxHooks(None, STAGE_FN(), STEP_FN(on_step), STOP_FN(should_stop))
        result = FluxResult()
        old = None
        if threading.current_thread() is threading.main_thread():
            old = signal.signal(signal.SIGINT, on_sigint)
        try:
            status = lib.fy_flux_t2i_generate(pipe, params.ptr, ctypes.byref(hooks), ctypes.byref(result))
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
            h, w = result.height, result.width
            n = h * w * 3
            u8 = (ctypes.c_uint8 * n)()
            lib.fy_video_to_u8_round(result.image, n, u8)
            return bytes(u8), ctypes.string_at(result.image, n * 4), w, h
        finally:
            lib.fy_flux_result_free(ctypes.byref(result))


class FluxPipelineOutput:
    """What the pipeline returns: ``images``, one per prompt."""

    def __init__(self, images):
        self.images = images

    def __getitem__(self, i):  # return_dict=False style: output[0] is the images
        return (self.images,)[i]


def _as_output(rgb, f32, width, height, output_type, settings):
    np = _numpy()
    if output_type == "pil":
        pil = _pil()
        if pil is not None:
            return pil.frombytes("RGB", (width, height), rgb)
        return Image(rgb, f32, width, height, settings)
    if output_type == "uint8":
        if np is not None:
            return np.frombuffer(rgb, dtype=np.uint8).reshape(height, width, 3)
        return Image(rgb, f32, width, height, settings).rows()
    if np is not None:
        return np.frombuffer(f32, dtype=np.float32).reshape(height, width, 3)
    values = memoryview(f32).cast("f")
    return [[list(values[(y * width + x) * 3:(y * width + x) * 3 + 3]) for x in range(width)] for y in range(height)]


class FluxPipeline(OffloadSwitches):
    """diffusers.FluxPipeline's calls over ferry's engine (FLUX.1-dev and -schnell folders).

    ``from_pretrained(path, torch_dtype=..., max_memory=..., **ferry_options)``, ``.to("cuda")``,
    ``enable_model_cpu_offload()``, ``enable_sequential_cpu_offload()``, ``enable_group_offload(...)``,
    ``vae.enable_tiling()``, ``vae.enable_slicing()``, then ``pipe(prompt=..., ...)`` returning an
    object whose ``images`` hold one image per prompt. The model loads at the first call and
    stays loaded for images of the same size; changing a switch afterwards reloads it.
    """

    _engine_class = FluxEngine

    def __call__(self, prompt=None, prompt_2=None, height=None, width=None, num_inference_steps=28,
                 guidance_scale=3.5, num_images_per_prompt=1, generator=None, output_type="pil", return_dict=True,
                 callback_on_step_end=None, max_sequence_length=512, seed=None):
        """One image per prompt (1024x1024 unless given). output_type "pil": PIL images when Pillow
        is there, else :class:`ferry.flux.Image` (size, tobytes(), save(path)); "np": float32 in
        [0, 1], (H, W, 3); "uint8": the PNG's 8-bit pixels (NumPy arrays when NumPy is there, else
        lists of row bytes). ``prompt_2`` (T5's prompt) must be the prompt or None."""
        if prompt is None:
            raise FerryValueError("prompt is required", "invalid")
        if output_type not in ("pil", "np", "uint8"):
            raise FerryValueError(f"output_type {output_type!r}: ferry gives \"pil\", \"np\" or \"uint8\"", "invalid")
        if num_images_per_prompt != 1:
            raise FerryValueError("num_images_per_prompt: one image per prompt (call again with another seed)",
                                  "invalid")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if prompt_2 is not None and ([prompt_2] if isinstance(prompt_2, str) else list(prompt_2)) != prompts:
            raise FerryValueError("prompt_2: ferry encodes one prompt with both text encoders (give prompt only)",
                                  "invalid")
        seed = _seed_of(generator) if seed is None else seed

        def on_step(i, n, seconds):
            if callback_on_step_end is not None:
                callback_on_step_end(self, i, None, {})

        engine = self._ready()
        images = []
        for text in prompts:
            settings = dict(prompt=text, height=height, width=width, num_inference_steps=num_inference_steps,
                            guidance_scale=guidance_scale, seed=seed, max_sequence_length=max_sequence_length)
            rgb, f32, w, h = engine.generate(settings, on_step)
            images.append(_as_output(rgb, f32, w, h, output_type, settings))
        out = FluxPipelineOutput(images)
        return out if return_dict else (images,)
