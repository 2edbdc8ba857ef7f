"""The Python API on the fixture model, both styles, against the CLI's output byte for byte.

Run by ctest (python_api) with FERRY_LIBRARY, FERRY_CLI and FERRY_FIXTURES_DIR set, and
PYTHONPATH pointing at python/. Standard library only: NumPy is used when it is there, and the
list fallback is checked either way.
"""
import os
import signal
import struct
import shutil
import subprocess
import sys
import tempfile
import unittest
import zlib

import ferry
import ferry._engine

FIXTURES = os.environ.get("FERRY_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "..", "fixtures"))
MODEL = os.path.join(FIXTURES, "wan-tiny", "model")
CLI = os.environ.get("FERRY_CLI", "ferry")
SIZE = dict(height=16, width=16, num_frames=5, num_inference_steps=2, max_sequence_length=16)
CLI_SIZE = ["-H", "16", "-W", "16", "--num-frames", "5", "--steps", "2", "--max-sequence-length", "16"]
PROMPT = "a red fox in the snow"


def png_pixels(path):
    """RGB8 rows of a non-interlaced PNG (what ferry writes), undoing the five filters."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, text = 8, b"", {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert (depth, color) == (8, 2)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"iTXt":
            key, rest = body.split(b"\0", 1)
            text[key.decode()] = rest[2:].split(b"\0", 2)[2].decode("utf-8")
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), width * 3, [], bytearray(width * 3)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return rows, text


def as_rows(frame):
    """One frame as a list of row bytes, from a NumPy array or the list fallback."""
    if hasattr(frame, "tobytes"):
        return [row.tobytes() for row in frame]
    return list(frame)


class FerryApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ferry-python-")
        cls.dir = cls.tmp.name
        cmd = [CLI, "generate", "--model", MODEL, "--prompt", PROMPT, *CLI_SIZE, "--seed", "7",
               "--output", os.path.join(cls.dir, "cli.png")]
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        cls.cli_files = [os.path.join(cls.dir, f"cli_{i:04d}.png") for i in range(5)]
        cls.cli_frames = [png_pixels(p)[0] for p in cls.cli_files]
        cls.generator = ferry.VideoGenerator.from_pretrained(MODEL, num_gpus=1, dit_layerwise_offload=True,
                                                             vae_cpu_offload=True, text_encoder_cpu_offload=True,
                                                             pin_cpu_memory=True, device="emu",
                                                             max_memory={0: "64MiB"})

    @classmethod
    def tearDownClass(cls):
        cls.generator.shutdown()
        cls.tmp.cleanup()

    def test_fastvideo_style_matches_cli(self):
        steps = []
        out = self.generator.generate_video(PROMPT, seed=7, output_path=os.path.join(self.dir, "py.png"),
                                            callback=lambda i, n, s: steps.append((i, n)), **SIZE)
        self.assertEqual(steps, [(0, 2), (1, 2)])
        self.assertEqual(len(out["frames"]), 5)
        for got, want in zip(out["frames"], self.cli_frames):
            self.assertEqual(as_rows(got), want)
        for i, cli_file in enumerate(self.cli_files):  # the same writer and tags: the same bytes
            with open(cli_file, "rb") as a, open(os.path.join(self.dir, f"py_{i:04d}.png"), "rb") as b:
                self.assertEqual(a.read(), b.read())
        self.assertEqual(out["seed"], 7)
        self.assertEqual(out["size"], (16, 16, 5))
        report = out["report"]
        self.assertEqual(report["settings"]["prompt"], PROMPT)
        self.assertEqual(report["video"], {"frames": 5, "height": 16, "width": 16})
        self.assertGreater(report["device"]["bytes_uploaded"], 0)  # layerwise streaming on emu
        self.assertEqual(report["engines"][0]["name"], "emu:0")

    def test_png_text_chunks(self):
        text = png_pixels(self.cli_files[0])[1]
        self.assertEqual(text["prompt"], PROMPT)
        self.assertEqual(text["seed"], "7")
        self.assertEqual(text["num_inference_steps"], "2")
        self.assertEqual(text["guidance_scale"], "5")

    def test_diffusers_style_matches_cli(self):
        pipe = ferry.WanPipeline.from_pretrained(MODEL, torch_dtype="float32")
        pipe.enable_model_cpu_offload(device="emu")
        pipe.vae.enable_tiling()
        pipe.vae.enable_slicing()
        out = pipe(prompt=PROMPT, generator=7, output_type="uint8", **SIZE)
        for got, want in zip(out.frames[0], self.cli_frames):
            self.assertEqual(as_rows(got), want)
        pipe.enable_group_offload(onload_device="emu", num_blocks_per_group=1, use_stream=True)
        floats = pipe(prompt=[PROMPT], generator=7, **SIZE).frames[0]
        pixel = floats[0][0][0]
        self.assertTrue(all(0.0 <= float(v) <= 1.0 for v in pixel))
        self.assertEqual(round(float(pixel[0]) * 255), self.cli_frames[0][0][0])

    def test_single_files_match_cli(self):
        helper = os.path.join(os.path.dirname(__file__), "..", "support", "wan_single_files.py")
        files = {}
        for part, extra in (("transformer", ["--prefix", "model.diffusion_model."]), ("vae", []),
                            ("text_encoder", ["--wan-names"])):
            files[part] = os.path.join(self.dir, part + ".safetensors")
            subprocess.run([sys.executable, helper, part, MODEL, files[part], *extra], check=True)
        config = os.path.join(self.dir, "configs")  # the folder without weights
        os.makedirs(os.path.join(config, "transformer"))
        for name in ("model_index.json", "scheduler", "tokenizer", "transformer/config.json"):
            src, dst = os.path.join(MODEL, name), os.path.join(config, name)
            (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, dst)
        pipe = ferry.WanPipeline.from_pretrained(config, config=config, **files)
        out = pipe(prompt=PROMPT, generator=7, output_type="uint8", **SIZE)
        for got, want in zip(out.frames[0], self.cli_frames):
            self.assertEqual(as_rows(got), want)

    def test_list_frames_without_numpy(self):
        saved = ferry._engine._numpy
        ferry._engine._numpy = lambda: None
        try:
            out = self.generator.generate_video(PROMPT, seed=7, **SIZE)
        finally:
            ferry._engine._numpy = saved
        self.assertIsInstance(out["frames"], list)
        self.assertEqual(out["frames"][4], self.cli_frames[4])
        self.assertIsNone(out["output_path"])

    def test_several_videos_one_load(self):
        first = self.generator.generate_video("a cat", seed=1, **SIZE)
        second = self.generator.generate_video("a cat", seed=1, **SIZE)
        self.assertEqual(as_rows(first["frames"][0]), as_rows(second["frames"][0]))
        self.assertLess(second["report"]["time_s"]["load"], 0.5)
        other = self.generator.generate_video("a cat", seed=1, **dict(SIZE, height=32))  # another shape: reloads
        self.assertEqual(len(as_rows(other["frames"][0])), 32)

    def test_errors_carry_the_message(self):
        with self.assertRaises(ferry.FerryValueError) as e:
            self.generator.generate_video(PROMPT, **dict(SIZE, height=17))
        self.assertIn("multiples of 16", str(e.exception))
        self.assertEqual(e.exception.status, "invalid")
        with self.assertRaises(ferry.FerryValueError) as e:
            ferry.VideoGenerator.from_pretrained(MODEL, max_memory={0: "6 apples"})
        self.assertIn("--max-memory", str(e.exception))
        with self.assertRaises(ferry.FerryValueError) as e:
            ferry.VideoGenerator.from_pretrained(MODEL, num_gpus=2)
        self.assertIn("device_map", str(e.exception))
        with self.assertRaises(ferry.FerryError) as e:
            ferry.VideoGenerator.from_pretrained(os.path.join(self.dir, "nowhere"))
        self.assertIn("nowhere", str(e.exception))
        with self.assertRaises(ferry.FerryValueError):
            ferry.WanPipeline.from_pretrained(MODEL, offlaod="model")

    def test_callback_stops_and_ctrl_c(self):
        with self.assertRaises(ferry.FerryError) as e:
            self.generator.generate_video(PROMPT, callback=lambda i, n, s: False, **SIZE)
        self.assertEqual(e.exception.status, "interrupted")

        def interrupt(i, n, s):
            os.kill(os.getpid(), signal.SIGINT)

        with self.assertRaises(KeyboardInterrupt):
            self.generator.generate_video(PROMPT, callback=interrupt, **SIZE)
        out = self.generator.generate_video(PROMPT, seed=7, **SIZE)  # still loaded, still right
        self.assertEqual(as_rows(out["frames"][0]), self.cli_frames[0])


class FerryImageToVideoTest(unittest.TestCase):
    """image= in both styles on the I2V fixture model: the CLI's --image frames, byte for byte."""

    MODEL = os.path.join(FIXTURES, "wan-i2v-tiny", "model")
    IMAGE = os.path.join(FIXTURES, "wan-i2v-tiny", "fixtures", "image_other.png")
    SIZE = dict(height=32, width=48, num_frames=5, num_inference_steps=2, max_sequence_length=16)

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ferry-python-i2v-")
        out = os.path.join(cls.tmp.name, "cli.png")
        cmd = [CLI, "generate", "--model", cls.MODEL, "--prompt", PROMPT, "--image", cls.IMAGE, "-H", "32", "-W", "48",
               "--num-frames", "5", "--steps", "2", "--max-sequence-length", "16", "--seed", "7", "--output", out]
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        cls.cli_frames = [png_pixels(os.path.join(cls.tmp.name, f"cli_{i:04d}.png"))[0] for i in range(5)]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_fastvideo_style_image(self):
        with ferry.VideoGenerator.from_pretrained(self.MODEL, device="emu", image_encoder_cpu_offload=True) as gen:
            out = gen.generate_video(PROMPT, image=self.IMAGE, seed=7, **self.SIZE)
            for got, want in zip(out["frames"], self.cli_frames):
                self.assertEqual(as_rows(got), want)
            with self.assertRaises(ferry.FerryError):  # an I2V folder needs its image
                gen.generate_video(PROMPT, seed=7, **self.SIZE)

    def test_diffusers_style_image_object(self):
        class Picture:  # what a PIL image offers the API: save(path, format=...)
            def save(self, path, format=None):
                with open(FerryImageToVideoTest.IMAGE, "rb") as src, open(path, "wb") as dst:
                    dst.write(src.read())

        pipe = ferry.WanImageToVideoPipeline.from_pretrained(self.MODEL)
        out = pipe(image=Picture(), prompt=PROMPT, generator=7, output_type="uint8", **self.SIZE)
        for got, want in zip(out.frames[0], self.cli_frames):
            self.assertEqual(as_rows(got), want)
        with self.assertRaises(ValueError):
            pipe(prompt=PROMPT, **self.SIZE)


class FerryTi2vImageTest(unittest.TestCase):
    """Wan2.2 TI2V's image mode: the folder is a WanPipeline one, loaded as diffusers users load it
    (WanImageToVideoPipeline.from_pretrained) or by FastVideo's call with image=; the CLI's frames."""

    MODEL = os.path.join(FIXTURES, "wan22-ti2v-tiny", "model")
    IMAGE = os.path.join(FIXTURES, "wan-i2v-tiny", "fixtures", "image_other.png")
    SIZE = dict(height=32, width=64, num_frames=5, num_inference_steps=2, max_sequence_length=16)

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ferry-python-ti2v-")
        out = os.path.join(cls.tmp.name, "cli.png")
        cmd = [CLI, "generate", "--model", cls.MODEL, "--prompt", PROMPT, "--image", cls.IMAGE, "-H", "32", "-W", "64",
               "--num-frames", "5", "--steps", "2", "--max-sequence-length", "16", "--seed", "7", "--output", out]
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        cls.cli_frames = [png_pixels(os.path.join(cls.tmp.name, f"cli_{i:04d}.png"))[0] for i in range(5)]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_both_styles(self):
        pipe = ferry.WanImageToVideoPipeline.from_pretrained(self.MODEL)
        out = pipe(image=self.IMAGE, prompt=PROMPT, generator=7, output_type="uint8", **self.SIZE)
        for got, want in zip(out.frames[0], self.cli_frames):
            self.assertEqual(as_rows(got), want)
        with ferry.VideoGenerator.from_pretrained(self.MODEL, device="emu") as gen:
            text = gen.generate_video(PROMPT, seed=7, **self.SIZE)  # text to video from the same load
            image = gen.generate_video(PROMPT, image=self.IMAGE, seed=7, **self.SIZE)
            for got, want in zip(image["frames"], self.cli_frames):
                self.assertEqual(as_rows(got), want)
            self.assertNotEqual(as_rows(text["frames"][0]), self.cli_frames[0])


if __name__ == "__main__":
    unittest.main()
