/* Run options: every flag in both spellings, sizes and rates, booleans,
 * one-line errors naming the flag and the choices, and the cross-flag checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/options.h"

static void assert_message(const char *needle)
{
    if (!strstr(fy_error_message(), needle)) fail_msg("message \"%s\" lacks \"%s\"", fy_error_message(), needle);
}

/* Parse a whole argument list; non-options are skipped. Returns the first failure. */
static fy_status parse(fy_run_options *o, int argc, const char **args)
{
    fy_run_options_init(o);
    char *argv[32];
    for (int i = 0; i < argc; i++) argv[i] = (char *)args[i];
    for (int i = 0; i < argc;) {
        bool consumed = false;
        fy_status s = fy_run_options_parse_arg(o, argc, argv, &i, &consumed);
        if (s != FY_OK) return s;
        if (!consumed) i++;
    }
    return FY_OK;
}

#define PARSE(o, ...)                                                  \
    parse((o), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), \
          (const char *[]){__VA_ARGS__})

static void test_defaults(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    assert_int_equal(o.device, FY_DEVICE_CPU);
    assert_int_equal(o.offload, FY_OFFLOAD_NONE);
    assert_int_equal(o.num_blocks_per_group, 1);
    assert_int_equal(o.prefetch_depth, 1);
    assert_true(o.pin_cpu_memory);
    assert_int_equal(o.resident_blocks, -1);
    assert_int_equal(o.compute_dtype, FY_F32);
    assert_int_equal(o.storage_dtype, FY_DTYPE_COUNT);
    assert_int_equal(o.vae_tile[0], 256);
    assert_int_equal(o.vae_tile_stride[1], 192);
    assert_int_equal(fy_run_options_validate(&o), FY_OK);
    assert_string_equal(fy_offload_policy_name(FY_OFFLOAD_LAYERWISE), "layerwise");
    assert_string_equal(fy_device_kind_name(FY_DEVICE_EMU), "emu");
    assert_non_null(strstr(fy_run_options_help(), "--max-memory"));
}

static void test_both_spellings(void **state)
{
    (void)state;
    fy_run_options o;
    assert_int_equal(PARSE(&o, "--offload", "group", "--num-blocks-per-group=4", "--device=emu"), FY_OK);
    assert_int_equal(o.offload, FY_OFFLOAD_GROUP);
    assert_int_equal(o.num_blocks_per_group, 4);
    assert_int_equal(o.device, FY_DEVICE_EMU);
    assert_int_equal(PARSE(&o, "--offload=sequential", "--threads", "8", "--trace=/tmp/t.json"), FY_OK);
    assert_int_equal(o.offload, FY_OFFLOAD_SEQUENTIAL);
    assert_int_equal(o.threads, 8);
    assert_string_equal(o.trace_path, "/tmp/t.json");
}

static void test_consumes_only_its_flags(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    char *argv[] = {"MODEL", "--component", "vae", "--offload", "model", "--steps=4"};
    int i = 0;
    bool consumed = true;
    assert_int_equal(fy_run_options_parse_arg(&o, 6, argv, &i, &consumed), FY_OK);
    assert_false(consumed);
    assert_int_equal(i, 0);
    i = 1;
    assert_int_equal(fy_run_options_parse_arg(&o, 6, argv, &i, &consumed), FY_OK);
    assert_false(consumed);
    i = 3;
    assert_int_equal(fy_run_options_parse_arg(&o, 6, argv, &i, &consumed), FY_OK);
    assert_true(consumed);
    assert_int_equal(i, 5);
    assert_int_equal(o.offload, FY_OFFLOAD_MODEL);
    assert_int_equal(fy_run_options_parse_arg(&o, 6, argv, &i, &consumed), FY_OK);
    assert_false(consumed);
    assert_int_equal(i, 5);
}

static void test_devices(void **state)
{
    (void)state;
    fy_run_options o;
    assert_int_equal(PARSE(&o, "--device", "cuda:3"), FY_OK);
    assert_int_equal(o.device, FY_DEVICE_CUDA);
    assert_int_equal(o.device_index, 3);
    assert_int_equal(PARSE(&o, "--device", "cuda"), FY_OK);
    assert_int_equal(o.device_index, 0);
    assert_int_equal(PARSE(&o, "--device", "cpu"), FY_OK);
    assert_int_equal(o.device, FY_DEVICE_CPU);
    assert_int_equal(PARSE(&o, "--device", "gpu"), FY_ERR_INVALID);
    assert_string_equal(fy_error_message(), "--device: invalid value \"gpu\" (valid: cpu, emu, emu:N, cuda, cuda:N)");
    assert_int_equal(PARSE(&o, "--device", "cuda:99"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--device", "cuda:"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--device", "cudax"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--device", "cpu:1"), FY_ERR_INVALID);
}

static void test_max_memory(void **state)
{
    (void)state;
    fy_run_options o;
    assert_int_equal(PARSE(&o, "--max-memory", "0=6GiB,1=20GiB,cpu=20GB"), FY_OK);
    assert_int_equal(o.max_memory[0], 6ull << 30);
    assert_int_equal(o.max_memory[1], 20ull << 30);
    assert_int_equal(o.max_memory_cpu, 20000000000ull);
    assert_int_equal(PARSE(&o, "--max-memory=6GiB"), FY_OK);
    assert_int_equal(o.max_memory[0], 6ull << 30);
    assert_int_equal(PARSE(&o, "--max-memory", "cuda:2=1GB"), FY_OK);
    assert_int_equal(o.max_memory[2], 1000000000ull);
    assert_int_equal(PARSE(&o, "--max-memory", "0=lots"), FY_ERR_INVALID);
    assert_message("--max-memory: invalid value \"0=lots\"");
    assert_int_equal(PARSE(&o, "--max-memory", "16=1GB"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--max-memory", "gpu=1GB"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--max-memory", ""), FY_ERR_INVALID);
    /* A key given twice would keep the last budget in silence; a bare size is device 0's. */
    assert_int_equal(PARSE(&o, "--max-memory", "0=5GiB,0=6GiB"), FY_ERR_INVALID);
    assert_message("device 0 is given twice in \"0=5GiB,0=6GiB\"");
    assert_int_equal(PARSE(&o, "--max-memory", "5GiB,cuda:0=6GiB"), FY_ERR_INVALID);
    assert_message("device 0 is given twice");
    assert_int_equal(PARSE(&o, "--max-memory", "cpu=1GiB,cpu=2GiB"), FY_ERR_INVALID);
    assert_message("cpu is given twice");
    assert_int_equal(PARSE(&o, "--max-memory", "5GiB,cpu=2GiB,1=1GiB"), FY_OK);
    assert_int_equal(o.max_memory[0], 5ull << 30);
    /* Empty entries are typos, not nothing. */
    static const char *const empty[] = {",", "0=5GiB,", ",0=5GiB", "0=5GiB,,1=1GiB"};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        assert_int_equal(PARSE(&o, "--max-memory", empty[i]), FY_ERR_INVALID);
        assert_message("empty entry");
    }
}

static void test_bandwidth(void **state)
{
    (void)state;
    fy_run_options o;
    assert_int_equal(PARSE(&o, "--emu-bandwidth", "25GB/s"), FY_OK);
    assert_true(o.emu_bandwidth == 25e9);
    /* A bare number is bytes to --max-memory: here it needs its unit. */
    assert_int_equal(PARSE(&o, "--emu-bandwidth=25"), FY_ERR_INVALID);
    assert_message("give e.g. 25GB/s");
    assert_int_equal(PARSE(&o, "--emu-bandwidth", "1.5GiB/s"), FY_OK);
    assert_true(o.emu_bandwidth == 1.5 * 1073741824.0);
    assert_int_equal(PARSE(&o, "--emu-bandwidth", "500MB"), FY_OK);
    assert_true(o.emu_bandwidth == 500e6);
    assert_int_equal(PARSE(&o, "--emu-bandwidth", "fast"), FY_ERR_INVALID);
    assert_message("--emu-bandwidth");
    assert_int_equal(PARSE(&o, "--emu-bandwidth", "-3GB/s"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--emu-bandwidth", "3XB/s"), FY_ERR_INVALID);
    /* Below 1 MB/s a run looks hung; 0 stays "unthrottled". */
    assert_int_equal(PARSE(&o, "--emu-bandwidth", "1B/s"), FY_ERR_INVALID);
    assert_message("below the minimum of 1MB/s");
    assert_int_equal(PARSE(&o, "--emu-bandwidth", "999KB/s"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--emu-bandwidth", "1MB/s"), FY_OK);
    assert_true(o.emu_bandwidth == 1e6);
    assert_int_equal(PARSE(&o, "--emu-bandwidth", "0"), FY_OK);
    assert_true(o.emu_bandwidth == 0);
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    o.emu_bandwidth = 1.0; /* the C API can set what the parser refuses */
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("at least 1MB/s");
}

static void test_bounds(void **state)
{
    (void)state;
    fy_run_options o;
    assert_int_equal(PARSE(&o, "--prefetch-depth", "2147483647"), FY_ERR_INVALID);
    assert_message("--prefetch-depth: invalid value \"2147483647\" (valid: an integer from 1 to 64)");
    assert_int_equal(PARSE(&o, "--prefetch-depth", "64"), FY_OK);
    assert_int_equal(PARSE(&o, "--threads", "100000"), FY_ERR_INVALID);
    assert_message("from 1 to 1024");
    assert_int_equal(PARSE(&o, "--threads", "1024"), FY_OK);
    assert_int_equal(PARSE(&o, "--collective-timeout", "99999999999"), FY_ERR_INVALID);
    assert_message("at most 1000000");
    assert_int_equal(PARSE(&o, "--vae-tile-stride", "1"), FY_ERR_INVALID);
    assert_message("at least 8");
    assert_int_equal(PARSE(&o, "--vae-tile", "256x7"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--vae-tile", "8", "--vae-tile-stride", "8"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_OK);
    fy_run_options_init(&o);
    o.prefetch_depth = 65;
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("--prefetch-depth");
    fy_run_options_init(&o);
    o.threads = 1025;
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("--threads");
    fy_run_options_init(&o);
    o.vae_tile_stride[1] = 4;
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("at least 8 pixels");
}

static void test_offload_flags(void **state)
{
    (void)state;
    fy_run_options o;
    assert_int_equal(PARSE(&o, "--dit-layerwise-offload"), FY_OK);
    assert_int_equal(o.offload, FY_OFFLOAD_LAYERWISE);
    assert_int_equal(PARSE(&o, "--dit-layerwise-offload", "--dit-layerwise-offload=false"), FY_OK);
    assert_int_equal(o.offload, FY_OFFLOAD_NONE);
    assert_int_equal(PARSE(&o, "--offload", "everything"), FY_ERR_INVALID);
    assert_string_equal(fy_error_message(),
                        "--offload: invalid value \"everything\" (valid: none, model, sequential, group, layerwise)");
    assert_int_equal(PARSE(&o, "--offload", "layerwise", "--prefetch-depth", "3", "--resident-blocks", "2"), FY_OK);
    assert_int_equal(o.prefetch_depth, 3);
    assert_int_equal(o.resident_blocks, 2);
    assert_int_equal(fy_run_options_validate(&o), FY_OK);
    assert_int_equal(PARSE(&o, "--resident-bytes", "4GiB"), FY_OK);
    assert_int_equal(o.resident_bytes, 4ull << 30);
    assert_int_equal(PARSE(&o, "--prefetch-depth", "0"), FY_ERR_INVALID);
    assert_message("--prefetch-depth: invalid value \"0\"");
    assert_int_equal(PARSE(&o, "--num-blocks-per-group", "two"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--device-map", "balanced"), FY_OK);
    assert_int_equal(o.device_map, FY_DEVICE_MAP_BALANCED);
    assert_int_equal(PARSE(&o, "--device-map", "sideways"), FY_ERR_INVALID);
    assert_message("balanced, auto");
}

static void test_booleans(void **state)
{
    (void)state;
    fy_run_options o;
    assert_int_equal(PARSE(&o, "--no-pin-cpu-memory"), FY_OK);
    assert_false(o.pin_cpu_memory);
    assert_int_equal(PARSE(&o, "--pin-cpu-memory=false"), FY_OK);
    assert_false(o.pin_cpu_memory);
    assert_int_equal(PARSE(&o, "--pin-cpu-memory=true"), FY_OK);
    assert_true(o.pin_cpu_memory);
    assert_int_equal(PARSE(&o, "--vae-tiling", "--vae-slicing", "--text-encoder-cpu-offload", "--vae-cpu-offload",
                           "--image-encoder-cpu-offload", "--dit-cpu-offload", "--use-fsdp-inference",
                           "--low-cpu-mem-usage"),
                     FY_OK);
    assert_true(o.vae_tiling && o.vae_slicing && o.text_encoder_cpu_offload && o.vae_cpu_offload);
    assert_true(o.image_encoder_cpu_offload && o.dit_cpu_offload && o.use_fsdp_inference && o.low_cpu_mem_usage);
    /* FastVideo's --flag False: a following True/False word is the switch's
     * value; any other next argument is left alone. */
    char *argv[] = {"--vae-tiling", "False", "--pin-cpu-memory", "1"};
    int i = 0;
    bool consumed;
    fy_run_options_init(&o);
    o.vae_tiling = true;
    assert_int_equal(fy_run_options_parse_arg(&o, 4, argv, &i, &consumed), FY_OK);
    assert_int_equal(i, 2);
    assert_false(o.vae_tiling);
    assert_int_equal(fy_run_options_parse_arg(&o, 4, argv, &i, &consumed), FY_OK);
    assert_int_equal(i, 3);
    assert_true(o.pin_cpu_memory);
    /* Python's and FastVideo's spelling, and the setter bindings use. */
    assert_int_equal(PARSE(&o, "--dit_layerwise_offload", "TRUE"), FY_OK);
    assert_int_equal(o.offload, FY_OFFLOAD_LAYERWISE);
    fy_run_options_init(&o);
    assert_int_equal(fy_run_options_set(&o, "vae_cpu_offload", NULL), FY_OK);
    assert_true(o.vae_cpu_offload);
    assert_int_equal(fy_run_options_set(&o, "--max-memory", "0=6.5GiB,cpu=20GB"), FY_OK);
    assert_true(o.max_memory[0] == 6979321856ull && o.max_memory_cpu == 20000000000ull);
    assert_int_equal(fy_run_options_set(&o, "no-pin-cpu-memory", NULL), FY_OK);
    assert_false(o.pin_cpu_memory);
    assert_int_equal(fy_run_options_set(&o, "offlaod", "model"), FY_ERR_INVALID);
    assert_message("unknown run option \"offlaod\"");
    /* A tile turns tiling on, and the stride follows it unless given. */
    fy_run_options_init(&o);
    assert_int_equal(PARSE(&o, "--vae-tile", "128"), FY_OK);
    assert_true(o.vae_tiling && o.vae_tile[0] == 128 && o.vae_tile_stride[0] == 96);
    assert_int_equal(PARSE(&o, "--vae-tile-stride", "64", "--vae-tile", "128"), FY_OK);
    assert_true(o.vae_tile_stride[0] == 64 && o.vae_tile_stride[1] == 64);
    assert_int_equal(PARSE(&o, "--vae-tiling=maybe"), FY_ERR_INVALID);
    assert_message("--vae-tiling: invalid value \"maybe\"");
    assert_int_equal(PARSE(&o, "--no-vae-tiling=true"), FY_ERR_INVALID);
    /* --no- only negates switches. */
    fy_run_options_init(&o);
    char *argv2[] = {"--no-offload", "x"};
    i = 0;
    assert_int_equal(fy_run_options_parse_arg(&o, 2, argv2, &i, &consumed), FY_OK);
    assert_false(consumed);
}

static void test_precision_and_vae(void **state)
{
    (void)state;
    fy_run_options o;
    assert_int_equal(PARSE(&o, "--dtype", "bf16", "--storage-dtype", "fp8_e4m3"), FY_OK);
    assert_int_equal(o.compute_dtype, FY_BF16);
    assert_int_equal(o.storage_dtype, FY_F8_E4M3);
    assert_int_equal(PARSE(&o, "--storage-dtype=fp8_e5m2", "--dtype=fp16"), FY_OK);
    assert_int_equal(o.storage_dtype, FY_F8_E5M2);
    assert_int_equal(o.compute_dtype, FY_F16);
    assert_int_equal(PARSE(&o, "--dtype", "fp8_e4m3"), FY_ERR_INVALID);
    assert_string_equal(fy_error_message(), "--dtype: invalid value \"fp8_e4m3\" (valid: f32, bf16, f16)");
    assert_int_equal(PARSE(&o, "--storage-dtype", "int4"), FY_ERR_INVALID);
    assert_message("fp8_e4m3, fp8_e5m2");
    assert_int_equal(o.fp8_scale, FY_FP8_SCALE_ROW);
    assert_int_equal(PARSE(&o, "--storage-dtype", "fp8_e4m3", "--fp8-scale", "tensor"), FY_OK);
    assert_int_equal(o.fp8_scale, FY_FP8_SCALE_TENSOR);
    assert_int_equal(PARSE(&o, "--fp8-scale=none"), FY_OK);
    assert_int_equal(o.fp8_scale, FY_FP8_SCALE_NONE);
    assert_int_equal(PARSE(&o, "--fp8-scale", "block"), FY_ERR_INVALID);
    assert_message("row, tensor, none");
    assert_int_equal(PARSE(&o, "--storage-dtype", "auto"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("needs --vram-budget");
    assert_int_equal(PARSE(&o, "--storage-dtype", "auto", "--vram-budget", "1GiB"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_OK);
    assert_true(o.storage_auto);
    assert_int_equal(o.storage_dtype, FY_DTYPE_COUNT);
    assert_int_equal(PARSE(&o, "--vae-tile", "256x320", "--vae-tile-stride=192"), FY_OK);
    assert_int_equal(o.vae_tile[0], 256);
    assert_int_equal(o.vae_tile[1], 320);
    assert_int_equal(o.vae_tile_stride[0], 192);
    assert_int_equal(o.vae_tile_stride[1], 192);
    assert_int_equal(PARSE(&o, "--vae-tile", "x256"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--vae-tile", "256x"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--vae-tile", "0"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--threads", "-1"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--max-shard-size", "50KB"), FY_OK);
    assert_int_equal(o.max_shard_size, 50000);
    assert_int_equal(PARSE(&o, "--max-shard-size", "0"), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--max-shard-size", "5 GB"), FY_ERR_INVALID);
    assert_message("--max-shard-size");
}

static void test_missing_value(void **state)
{
    (void)state;
    fy_run_options o;
    assert_int_equal(PARSE(&o, "--offload"), FY_ERR_INVALID);
    assert_message("--offload needs a value");
    assert_int_equal(PARSE(&o, "--trace", "--offload", "model"), FY_ERR_INVALID);
    assert_message("--trace needs a value");
    assert_int_equal(PARSE(&o, "--trace="), FY_ERR_INVALID);
}

static void test_validate(void **state)
{
    (void)state;
    fy_run_options o;
    assert_int_equal(PARSE(&o, "--num-blocks-per-group", "2"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("--num-blocks-per-group applies to --offload group");
    assert_int_equal(PARSE(&o, "--num-blocks-per-group", "2", "--offload", "layerwise"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--num-blocks-per-group", "2", "--offload", "group", "--use-stream",
                           "--record-stream"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_OK);
    assert_int_equal(PARSE(&o, "--offload", "group", "--record-stream"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("--record-stream needs --use-stream");
    assert_int_equal(PARSE(&o, "--use-stream"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--resident-blocks", "3"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("--resident-blocks");
    assert_int_equal(PARSE(&o, "--offload", "layerwise", "--resident-blocks", "3", "--resident-bytes", "1GB"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_int_equal(PARSE(&o, "--emu-bandwidth", "25GB/s"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("--device emu");
    assert_int_equal(PARSE(&o, "--vae-tile", "128", "--vae-tile-stride", "192"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("gaps");
    /* --device-map on the host: auto is refused as balanced is. */
    assert_int_equal(PARSE(&o, "--device-map", "auto"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("--device-map auto places components on devices");
    assert_int_equal(PARSE(&o, "--device-map", "balanced", "--device", "cpu"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("--device-map balanced places components on devices");
    assert_int_equal(PARSE(&o, "--device-map", "auto", "--device", "emu"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_OK);
    /* --fp8-scale means nothing without fp8 storage. */
    assert_int_equal(PARSE(&o, "--fp8-scale", "tensor"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("--fp8-scale sets the scales of fp8 storage");
    assert_int_equal(PARSE(&o, "--fp8-scale", "tensor", "--storage-dtype", "fp8_e5m2"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_OK);
    assert_int_equal(PARSE(&o, "--fp8-scale", "row", "--storage-dtype", "auto", "--vram-budget", "1GiB"), FY_OK);
    assert_int_equal(fy_run_options_validate(&o), FY_OK);
    assert_string_equal(fy_storage_dtype_flag_name(FY_F8_E4M3), "fp8_e4m3");
    assert_string_equal(fy_storage_dtype_flag_name(FY_F8_E5M2), "fp8_e5m2");
    fy_run_options_init(&o);
    o.prefetch_depth = 0; /* the C API can set what the parser refuses */
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("--prefetch-depth");
    assert_int_equal(PARSE(&o, "--device", "cuda"), FY_OK);
#ifdef FERRY_HAVE_CUDA
    assert_int_equal(fy_run_options_validate(&o), FY_OK);
#else
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_message("no CUDA backend");
#endif
}

/* A temporary folder for the file checks; the caller removes what it made. */
static char *temp_dir(void)
{
    const char *base = getenv("TMPDIR");
    char *dir = malloc(4096);
    snprintf(dir, 4096, "%s/ferry-options-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void test_output_files(void **state)
{
    (void)state;
    char *dir = temp_dir();
    char fifo[4200], sub[4200], file[4200], link[4200], missing[4200];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(file, sizeof file, "%s/t.json", dir);
    snprintf(link, sizeof link, "%s/link.json", dir);
    snprintf(missing, sizeof missing, "%s/none/t.json", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(symlink(file, link), 0);
    assert_int_equal(fy_check_output_file("--trace", file), FY_OK); /* new */
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(fy_check_output_file("--trace", file), FY_OK); /* regular: replaced */
    assert_int_equal(fy_check_output_file("--trace", fifo), FY_ERR_IO);
    assert_message("exists and is a FIFO");
    assert_int_equal(fy_check_output_file("--trace", sub), FY_ERR_IO);
    assert_message("exists and is a folder");
    assert_int_equal(fy_check_output_file("--trace", link), FY_ERR_IO);
    assert_message("symbolic link");
    assert_int_equal(fy_check_output_file("--output", missing), FY_ERR_IO);
    assert_message("does not exist");
    assert_message("--output");
    fy_run_options o;
    fy_run_options_init(&o);
    assert_int_equal(fy_run_options_check_files(&o), FY_OK);
    o.trace_path = fifo;
    assert_int_equal(fy_run_options_check_files(&o), FY_ERR_IO);
    assert_message("--trace");
    unlink(link);
    unlink(file);
    unlink(fifo);
    rmdir(sub);
    rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_both_spellings),
        cmocka_unit_test(test_consumes_only_its_flags),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_max_memory),
        cmocka_unit_test(test_bandwidth),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_offload_flags),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_precision_and_vae),
        cmocka_unit_test(test_missing_value),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_output_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
