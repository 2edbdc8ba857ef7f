"""FastVideo's API: VideoGenerator.from_pretrained(path, **options).generate_video(prompt, ...)."""
import os
import re

from ._engine import Engine, frames_u8
from ._image import image_file
from ._options import RunOptions

_VIDEO_SUFFIXES = (".mp4", ".png")


def _output_file(output_path, prompt):
    """FastVideo's rule: a file name as given, anything else a folder holding <prompt>.mp4."""
    path = os.fspath(output_path)
    if path.lower().endswith(_VIDEO_SUFFIXES) or "%" in os.path.basename(path):
        return path
    os.makedirs(path, exist_ok=True)
    stem = re.sub(r"[^\w\- ,.]+", "_", prompt[:100]).strip(" .") or "video"
    return os.path.join(path, stem + ".mp4")


class VideoGenerator:
    """A model loaded once that generates several videos.

    Options take FastVideo's names (``num_gpus``, ``dit_layerwise_offload``, ``vae_cpu_offload``,
    ``text_encoder_cpu_offload``, ``image_encoder_cpu_offload``, ``pin_cpu_memory``,
    ``use_fsdp_inference``, ``dit_cpu_offload``) and ferry's (``device="cpu"|"emu"|"cuda"``,
    ``max_memory={0: "6GiB", "cpu": "20GiB"}``, ``offload="layerwise"``, ``vram_budget="8GiB"``,
    and every other ``ferry generate`` memory flag with underscores).
    """

    def __init__(self, model_path, **options):
        self._engine = Engine(os.fspath(model_path), RunOptions(**options))

    @classmethod
    def from_pretrained(cls, model_path, **options):
        """Check the model folder and the options; the weights load at the first video."""
        return cls(model_path, **options)

    def generate_video(self, prompt, negative_prompt=None, height=None, width=None, num_frames=None,
                       num_inference_steps=None, guidance_scale=None, seed=None, output_path=None, save_video=True,
                       callback=None, fps=16, crf=None, image=None, **settings):
        """Generate one video.

        Returns a dict: ``frames`` (F, H, W, 3) uint8 (a NumPy array, else a list of frames of rows
        of RGB bytes), ``report`` (the closing report: settings, times, memory), ``prompt``,
        ``seed``, ``size`` (height, width, frames), ``generation_time`` (s) and ``output_path``
        (None when no file was written). ``callback(step, steps, seconds)`` runs after each
        denoising step; returning False stops the video (FerryError). Ctrl-C stops between steps
        with KeyboardInterrupt, the model staying loaded. ``image`` (a PNG/JPEG path or a PIL
        image) is the first frame for an image-to-video model. Other settings by name:
        ``flow_shift``, ``guidance_scale_2``, ``max_sequence_length``; ``seed=-1`` is random.
        """
        values = dict(prompt=prompt, negative_prompt=negative_prompt, height=height, width=width,
                      num_frames=num_frames, num_inference_steps=num_inference_steps,
                      guidance_scale=guidance_scale, seed=seed, **settings)
        path = _output_file(output_path, prompt) if save_video and output_path is not None else None
        with image_file(image) as image_path:
            values["image"] = image_path
            video = self._engine.generate(values, callback, path, fps, crf)
        report = video.report
        s = report["settings"]
        return {
            "frames": frames_u8(video.u8, *video.shape[:3]),
            "report": report,
            "prompt": prompt,
            "seed": int(s["seed_text"]),
            "size": (s["height"], s["width"], s["num_frames"]),
            "generation_time": report["time_s"]["total"],
            "output_path": path,
        }

    def cancel(self):
        """Stop the running generate_video between steps (from another thread)."""
        self._engine.cancel()

    def shutdown(self):
        """Free the model (FastVideo's name); close() does the same."""
        self._engine.close()

    close = shutdown

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
