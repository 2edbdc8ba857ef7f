"""diffusers' API: WanPipeline.from_pretrained(path), the offload switches, pipe(prompt=...).frames[0]."""
import os

from ._engine import Engine, frames_f32, frames_u8
from ._image import image_file
from ._native import FerryValueError
from ._options import RunOptions


class WanPipelineOutput:
    """What the pipeline returns: ``frames``, one video per prompt."""

    def __init__(self, frames, reports):
        self.frames = frames
        self.reports = reports

    def __getitem__(self, i):  # return_dict=False style: output[0] is the frames
        return (self.frames,)[i]


def _dtype_name(dtype):
    text = str(dtype).replace("torch.", "")
    names = {"bfloat16": "bf16", "bf16": "bf16", "float16": "f16", "half": "f16", "f16": "f16",
             "float32": "f32", "float": "f32", "f32": "f32"}
    if text not in names:
        raise FerryValueError(f"torch_dtype {dtype}: ferry computes in float32, bfloat16 or float16", "invalid")
    return names[text]


def _seed_of(generator):
    """An int, or a torch.Generator-like object (its initial_seed())."""
    if generator is None:
        return None
    if isinstance(generator, int):
        return generator
    if isinstance(generator, (list, tuple)):
        raise FerryValueError("generator: one seed per call (a list of generators is not supported)", "invalid")
    if hasattr(generator, "initial_seed"):
        return generator.initial_seed()
    raise FerryValueError(f"generator {generator!r}: give an int seed or a torch.Generator", "invalid")


class _Vae:
    """pipe.vae: the decode switches diffusers puts on AutoencoderKLWan."""

    def __init__(self, pipe):
        self._pipe = pipe

    def enable_tiling(self, tile_sample_min_height=None, tile_sample_min_width=None, tile_sample_stride_height=None,
                      tile_sample_stride_width=None):
        if isinstance(tile_sample_min_height, bool):
            # AutoencoderKL's enable_tiling(use_tiling=True)
            self._pipe._set(vae_tiling=tile_sample_min_height)
            return
        self._pipe._set(vae_tiling=True)
        if tile_sample_min_height or tile_sample_min_width:
            h = tile_sample_min_height or tile_sample_min_width
            self._pipe._set(vae_tile=f"{h}x{tile_sample_min_width or h}")
        if tile_sample_stride_height or tile_sample_stride_width:
            h = tile_sample_stride_height or tile_sample_stride_width
            self._pipe._set(vae_tile_stride=f"{h}x{tile_sample_stride_width or h}")

    def disable_tiling(self):
        self._pipe._set(vae_tiling=False)

    def enable_slicing(self):
        self._pipe._set(vae_slicing=True)

    def disable_slicing(self):
        self._pipe._set(vae_slicing=False)


class OffloadSwitches:
    """What every diffusers pipeline here shares: from_pretrained's options and the memory
    switches, kept as ferry run options; a switch changed after a load reloads the model."""

    _engine_class = None

    def __init__(self, model_path, **options):
        self.model_path = os.fspath(model_path)
        self._options = {}
        self._engine = None
        self.vae = _Vae(self)
        self._set(**options)

    @classmethod
    def from_pretrained(cls, model_path, torch_dtype=None, device_map=None, max_memory=None, **options):
        if torch_dtype is not None:
            options["dtype"] = _dtype_name(torch_dtype)
        if device_map is not None:
            options["device_map"] = device_map
        if max_memory is not None:
            options["max_memory"] = max_memory
        pipe = cls(model_path, **options)
        RunOptions(**pipe._options).validate()  # bad options fail here, as diffusers' would
        return pipe

    def _set(self, **options):
        for key, value in options.items():
            self._options[key] = value
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def to(self, device):
        self._set(device=str(device))
        return self

    def enable_model_cpu_offload(self, gpu_id=None, device=None):
        self._set(offload="model")
        if device is not None:
            self._set(device=str(device))

    def enable_sequential_cpu_offload(self, gpu_id=None, device=None):
        self._set(offload="sequential")
        if device is not None:
            self._set(device=str(device))

    def enable_group_offload(self, onload_device=None, offload_device=None, offload_type="block_level",
                             num_blocks_per_group=None, use_stream=False, record_stream=False,
                             low_cpu_mem_usage=False):
        if offload_type == "block_level":
            self._set(offload="group", num_blocks_per_group=num_blocks_per_group or 1, use_stream=use_stream,
                      record_stream=record_stream)
        elif offload_type == "leaf_level":
            # Leaf modules moved as they run: with a stream, ahead of use (layerwise), else on demand.
            self._set(offload="layerwise" if use_stream else "sequential")
        else:
            raise FerryValueError(f"offload_type {offload_type!r}: use \"block_level\" or \"leaf_level\"", "invalid")
        self._set(low_cpu_mem_usage=low_cpu_mem_usage)
        if onload_device is not None:
            self._set(device=str(onload_device))

    def enable_vae_tiling(self):
        self.vae.enable_tiling()

    def enable_vae_slicing(self):
        self.vae.enable_slicing()

    def _ready(self):
        if self._engine is None:
            self._engine = self._engine_class(self.model_path, RunOptions(**self._options))
        return self._engine


class WanPipeline(OffloadSwitches):
    """diffusers.WanPipeline's calls over ferry's engine.

    ``from_pretrained(path, torch_dtype=..., device_map=..., max_memory=..., **ferry_options)``,
    ``.to("cuda")``, ``enable_model_cpu_offload()``, ``enable_sequential_cpu_offload()``,
    ``enable_group_offload(...)``, ``vae.enable_tiling()``, ``vae.enable_slicing()``, then
    ``pipe(prompt=..., ...)`` returning an object whose ``frames[0]`` is the first video. The
    model loads at the first call and stays loaded; changing a switch afterwards reloads it.
    """

    _engine_class = Engine

    def __call__(self, prompt=None, negative_prompt=None, height=480, width=832, num_frames=81,
                 num_inference_steps=50, guidance_scale=5.0, guidance_scale_2=None, num_videos_per_prompt=1,
                 generator=None, output_type="np", return_dict=True, callback_on_step_end=None,
                 max_sequence_length=512, seed=None, flow_shift=None, image=None):
        """One video per prompt. output_type "np": float32 in [0, 1] as diffusers gives it;
        "uint8": 8-bit frames as the PNGs hold them (NumPy arrays when NumPy is there, else lists).
        ``image`` (a PNG/JPEG path or a PIL image): the first frame, for image-to-video models."""
        if prompt is None:
            raise FerryValueError("prompt is required", "invalid")
        if output_type not in ("np", "uint8"):
            raise FerryValueError(f"output_type {output_type!r}: ferry gives \"np\" (float32) or \"uint8\"", "invalid")
        if num_videos_per_prompt != 1:
            raise FerryValueError("num_videos_per_prompt: one video per prompt (call again with another seed)",
                                  "invalid")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        negatives = negative_prompt if isinstance(negative_prompt, (list, tuple)) else [negative_prompt] * len(prompts)
        seed = _seed_of(generator) if seed is None else seed

        def on_step(i, n, seconds):
            if callback_on_step_end is not None:
                callback_on_step_end(self, i, None, {})

        engine = self._ready()
        videos, reports = [], []
        for text, negative in zip(prompts, negatives):
            settings = dict(prompt=text, negative_prompt=negative, height=height, width=width, num_frames=num_frames,
                            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                            guidance_scale_2=guidance_scale_2, seed=seed, max_sequence_length=max_sequence_length,
                            flow_shift=flow_shift)
            with image_file(image) as image_path:
                settings["image"] = image_path
                video = engine.generate(settings, on_step, want_f32=output_type == "np")
            f, h, w, _ = video.shape
            videos.append(frames_f32(video.f32, f, h, w) if output_type == "np" else frames_u8(video.u8, f, h, w))
            reports.append(video.report)
        out = WanPipelineOutput(videos, reports)
        return out if return_dict else (videos,)


class WanImageToVideoPipeline(WanPipeline):
    """diffusers' WanImageToVideoPipeline: the same calls, with ``image`` required."""

    def __call__(self, image=None, prompt=None, **kwargs):
        if image is None:
            raise FerryValueError("image is required (a PNG/JPEG path or a PIL image)", "invalid")
        return super().__call__(prompt=prompt, image=image, **kwargs)
