"""ferry: run large diffusion models on GPUs too small to hold them.

Two API styles over the same C engine (libferry.so, through ctypes):

* FastVideo's: ``ferry.VideoGenerator.from_pretrained(path, **options)``, then
  ``generate_video(prompt, ...)`` returning a dict with the frames and the report;
* diffusers': ``ferry.WanPipeline.from_pretrained(path)``, ``enable_model_cpu_offload()``
  and friends, then ``pipe(prompt=...).frames[0]``; ``ferry.FluxPipeline`` gives ``.images``.

Errors from the engine are raised as :class:`FerryError` (``ValueError`` too for bad
input) carrying ferry's one-line message.
"""
from ._native import FerryError, FerryValueError, library_path, set_log_level, version
from .generator import VideoGenerator
from .diffusers import WanImageToVideoPipeline, WanPipeline, WanPipelineOutput
from .flux import FluxPipeline, FluxPipelineOutput

__version__ = version()

__all__ = [
    "FerryError",
    "FerryValueError",
    "FluxPipeline",
    "FluxPipelineOutput",
    "VideoGenerator",
    "WanImageToVideoPipeline",
    "WanPipeline",
    "WanPipelineOutput",
    "library_path",
    "set_log_level",
    "__version__",
]
