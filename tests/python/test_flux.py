"""ferry.FluxPipeline on the Flux fixture models against `ferry generate`'s PNG, byte for byte.

Run by ctest (python_api) like test_ferry.py. Standard library only: without Pillow the images
are ferry.flux.Image objects, whose save() writes the CLI's PNG.
"""
import os
import signal
import subprocess
import tempfile
import unittest

import ferry
import ferry.flux
from test_ferry import CLI, FIXTURES, as_rows, png_pixels

DEV = os.path.join(FIXTURES, "flux-tiny", "model")
SCHNELL = os.path.join(FIXTURES, "flux-tiny", "model-schnell")
PROMPT = "a red fox in the snow"
SIZE = dict(height=64, width=80, num_inference_steps=2, max_sequence_length=24)
CLI_SIZE = ["--height", "64", "--width", "80", "--steps", "2", "--max-sequence-length", "24"]


def image_rows(image):
    """An image's rows of RGB bytes: ferry's Image, a PIL image or a NumPy array."""
    if hasattr(image, "rows"):
        return image.rows()
    if hasattr(image, "tobytes") and hasattr(image, "size") and not hasattr(image, "shape"):
        raw, (w, h) = image.tobytes(), image.size
        return [raw[y * w * 3:(y + 1) * w * 3] for y in range(h)]
    return as_rows(image)


class FluxPipelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ferry-python-flux-")
        cls.dir = cls.tmp.name
        cls.cli_png = os.path.join(cls.dir, "cli.png")
        subprocess.run([CLI, "generate", "--model", DEV, "--prompt", PROMPT, *CLI_SIZE, "--seed", "7",
                        "--output", cls.cli_png], check=True, stderr=subprocess.DEVNULL)
        cls.cli_rows, cls.cli_text = png_pixels(cls.cli_png)
        cls.pipe = ferry.FluxPipeline.from_pretrained(DEV, torch_dtype="float32")
        cls.pipe.enable_model_cpu_offload(device="emu")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_image_matches_cli_png(self):
        steps = []
        out = self.pipe(prompt=PROMPT, generator=7, callback_on_step_end=lambda p, i, t, k: steps.append(i) or k,
                        **SIZE)
        self.assertEqual(steps, [0, 1])
        image = out.images[0]
        self.assertEqual(image.size, (80, 64))
        self.assertEqual(image_rows(image), self.cli_rows)
        if isinstance(image, ferry.flux.Image):  # the same writer and tags: the same file
            path = os.path.join(self.dir, "py.png")
            image.save(path)
            with open(path, "rb") as a, open(self.cli_png, "rb") as b:
                self.assertEqual(a.read(), b.read())
        self.assertEqual(self.cli_text["prompt"], PROMPT)
        self.assertEqual(self.cli_text["seed"], "7")

    def test_output_types(self):
        rows = self.pipe(prompt=PROMPT, generator=7, output_type="uint8", **SIZE).images[0]
        self.assertEqual(image_rows(rows), self.cli_rows)
        floats = self.pipe(prompt=PROMPT, generator=7, output_type="np", **SIZE).images[0]
        pixel = floats[0][0]
        self.assertTrue(all(0.0 <= float(v) <= 1.0 for v in pixel))
        self.assertEqual(round(float(pixel[0]) * 255), self.cli_rows[0][0])

    def test_several_images_one_load_then_another_size(self):
        first = self.pipe(prompt="a cat", generator=3, output_type="uint8", **SIZE).images[0]
        second = self.pipe(prompt=["a cat"], generator=3, output_type="uint8", **SIZE).images[0]
        self.assertEqual(image_rows(first), image_rows(second))
        other = self.pipe(prompt="a cat", generator=3, output_type="uint8", **dict(SIZE, height=32)).images[0]
        self.assertEqual(len(image_rows(other)), 32)

    def test_schnell_sequential_offload_and_vae_tiling(self):
        cli = os.path.join(self.dir, "schnell.png")
        subprocess.run([CLI, "generate", "--model", SCHNELL, "--prompt", "a blue bird", "--height", "48", "--width",
                        "64", "--steps", "1", "--max-sequence-length", "16", "--seed", "5", "--output", cli],
                       check=True, stderr=subprocess.DEVNULL)
        pipe = ferry.FluxPipeline.from_pretrained(SCHNELL)
        pipe.enable_sequential_cpu_offload(device="emu")
        pipe.vae.enable_tiling(True)  # AutoencoderKL's use_tiling
        out = pipe(prompt="a blue bird", height=48, width=64, num_inference_steps=1, max_sequence_length=16,
                   generator=5, output_type="uint8")
        self.assertEqual(image_rows(out.images[0]), png_pixels(cli)[0])

    def test_errors_carry_the_message(self):
        with self.assertRaises(ferry.FerryValueError) as e:
            self.pipe(prompt=PROMPT, **dict(SIZE, height=60))
        self.assertIn("multiples of 16", str(e.exception))
        with self.assertRaises(ferry.FerryValueError):
            self.pipe(prompt=PROMPT, prompt_2="another prompt", **SIZE)
        with self.assertRaises(ferry.FerryValueError):
            ferry.FluxPipeline.from_pretrained(DEV, offlaod="model")
        with self.assertRaises(ferry.FerryError) as e:
            ferry.FluxPipeline.from_pretrained(os.path.join(FIXTURES, "wan-tiny", "model"))(prompt=PROMPT, **SIZE)
        self.assertIn("not FluxPipeline", str(e.exception))
        out = self.pipe(prompt=PROMPT, generator=7, output_type="uint8", **SIZE)  # still loaded, still right
        self.assertEqual(image_rows(out.images[0]), self.cli_rows)

    def test_ctrl_c_stops_and_the_model_stays(self):
        def interrupt(pipe, i, t, kwargs):
            os.kill(os.getpid(), signal.SIGINT)

        with self.assertRaises(KeyboardInterrupt):
            self.pipe(prompt=PROMPT, callback_on_step_end=interrupt, **SIZE)
        out = self.pipe(prompt=PROMPT, generator=7, output_type="uint8", **SIZE)
        self.assertEqual(image_rows(out.images[0]), self.cli_rows)


if __name__ == "__main__":
    unittest.main()
