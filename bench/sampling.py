"""Sample stage throughput: the whole stage against the denoiser alone, cost per 1,000 images, Ray 1 vs 2 workers.

    python bench/sampling.py --parts stage flops        # default-size untrained models in a temp dir, CPU
    python bench/sampling.py --diffusion models/diffusion --autoencoder models/autoencoder
    python bench/sampling.py --device cuda --bf16 --compile --channels-last --batch 256 --per-shard 1024

Parts (pick with --parts; each is measured side by side in this one run, so ratios hold under load):
- stage: images/s of plan -> generate_shard (denoise, decode, quantise, PNG encode in the background
  pool, atomic shard write with its Parquet index) beside the same model, sampler, steps and batches
  through the sampler loop alone (eps_fn only). Prints the ratio and a per-image breakdown in which
  every part is measured on its own (PNG encode on one thread).
- flops: FLOPs of one denoiser forward and of one decode (torch FlopCounterMode), the denoiser's
  achieved GFLOP/s (TFLOP/s on CUDA), and a large matmul probe (bf16 on CUDA, fp32 on CPU) beside it.
- scale: time per 1,000 images of the core run (plan, resume scan, shards, receipts, metadata and
  manifest) at every --scale-sizes up to --scale-max-images with the model, and at every size for the
  bookkeeping alone (the same shard writes with one fixed image in place of the model).
- ray: the real Prefect flow (`flows.sample.run_sample`, sample.task_runner=ray, no filter) with 1 and 2 workers:
  images/s, identical shard sha256s, Ray's listening addresses (loopback only) and its shutdown.
  Prefect runs in a throwaway PREFECT_HOME with analytics off.
Without --diffusion/--autoencoder, untrained models of the default params' size are written to a temp dir.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from synthgen.atomic import sha256_file
from synthgen.config.diffusion import SamplerConfig
from synthgen.config.sample import SampleConfig
from synthgen.diffusion import sample_with_config
from synthgen.diffusion.noise import SampleGenerators
from synthgen.generate.fixed_batch import in_fixed_batches
from synthgen.generate.models import GenerationModels, load_models
from synthgen.generate.plan import SamplingPlan, ShardPlan, sample_key
from synthgen.stages.layout import SyntheticLayout
from synthgen.stages.sample import build_plan, finish_run, pending_shards, run_key
from synthgen.generate.shard_sampler import Provenance, chunks, generate_pixels, generate_shard, initial_noise
from synthgen.imaging import encode_image, to_uint8
from synthgen.precision import bf16_autocast
from synthgen.seeds import derive_seed
from synthgen.shards import ShardSample, write_shard
from synthgen.shards.progress import record_done

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
CPU_TARGET, GPU_TARGET = 0.90, 0.95  # whole stage / denoiser alone (issue 5)


# 1) models, configs, clocks

def shard_batches(shard: ShardPlan, batch_size: int):
    """(labels, seeds) of each batch of a shard's first draws, in the order generate_shard draws them."""
    for rows in chunks(list(range(len(shard.labels))), batch_size):
        yield shard.labels[rows], [shard.seeds[r] for r in rows]


def write_default_models(folder: Path) -> tuple[str, str]:
    """Untrained models of the default params' size: AutoencoderConfig(), DiffusionConfig() on DataConfig() images."""
    from synthgen.autoencoder.trained import write_trained as write_autoencoder
    from synthgen.config.autoencoder import AutoencoderConfig
    from synthgen.config.data import DataConfig
    from synthgen.config.diffusion import DiffusionConfig
    from synthgen.data.shapes import CLASS_NAMES
    from synthgen.stages.train_diffusion import resolve_config
    from synthgen.ldm.trained import write_trained as write_diffusion
    from synthgen.models.autoencoder import Autoencoder
    from synthgen.models.unet import UNet

    torch.manual_seed(0)
    ae_cfg = AutoencoderConfig()
    side = DataConfig().resolution // ae_cfg.model.downsample
    latent_shape = (ae_cfg.model.latent_channels, side, side)
    ae_sha = write_autoencoder(folder / "autoencoder", Autoencoder(ae_cfg.model), ae_cfg, scale_factor=1.0)
    cfg = resolve_config(DiffusionConfig(), latent_shape, len(CLASS_NAMES))  # the fields train_diffusion fills in
    unet = UNet(cfg.model)
    guide = UNet(cfg.model)  # random too: sampling times autoguidance's third network row
    write_diffusion(folder / "diffusion", unet, unet, cfg, CLASS_NAMES, latent_shape, ae_sha, 1.0, guide.state_dict())
    return str(folder / "diffusion"), str(folder / "autoencoder")


def sample_config(args, num_images: int, steps: int, per_shard: int, **extra) -> SampleConfig:
    sampler = {"name": args.sampler, "steps": steps, "guidance_scale": args.guidance, "eta": args.eta}
    return SampleConfig.model_validate(dict(
        num_images=num_images, images_per_shard=per_shard, batch_size=args.batch, sampler=sampler,
        image_format=args.format, encode_workers=args.encode_workers, device=args.device, bf16=args.bf16,
        compile=args.compile, channels_last=args.channels_last, **extra))


def provenance_for(models: GenerationModels, cfg: SampleConfig, plan: SamplingPlan) -> Provenance:
    d_sha, a_sha = models.diffusion.sha256, models.autoencoder.sha256
    return Provenance(d_sha, a_sha, run_key(cfg, plan.seed, d_sha, a_sha))


class Clock:
    """Wall seconds since the previous lap (CUDA synchronised first: its work is asynchronous).

    `cpu` holds this process's CPU seconds, all threads, over the same span. With one torch thread other
    users' load barely moves it; with several, threads spinning while they wait for each other inflate it.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.last, self.last_cpu, self.cpu = self.now(), time.process_time(), 0.0

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def lap(self) -> float:
        wall, cpu = self.now(), time.process_time()
        elapsed, self.cpu = wall - self.last, cpu - self.last_cpu
        self.last, self.last_cpu = wall, cpu
        return elapsed


def describe(models: GenerationModels, cfg: SampleConfig) -> str:
    s = cfg.sampler
    params = sum(p.numel() for p in models.diffusion.model.parameters())
    ae_params = sum(p.numel() for p in models.autoencoder.model.parameters())
    return (f"denoiser {params / 1e6:.2f}M params on latents {'x'.join(map(str, models.diffusion.latent_shape))}, "
            f"autoencoder {ae_params / 1e6:.2f}M params, {models.image_size}px images; "
            f"{s.name} {s.steps} steps, eta {s.eta}, guidance {s.guidance_scale}; batch {cfg.batch_size}, "
            f"{cfg.images_per_shard}/shard, {cfg.image_format}, encode_workers {cfg.encode_workers}; "
            f"device {models.device}, bf16 {cfg.bf16 and models.device.type == 'cuda'}, compile {cfg.compile}, "
            f"torch threads {torch.get_num_threads()}")


# 2) the whole stage, the denoiser alone, and the breakdown

def noise_for(models: GenerationModels, labels: np.ndarray, seeds: list[int]):
    """x_T, labels and the per-sample sampler generators of one batch, as generate_pixels makes them."""
    x_T = initial_noise(seeds, models.diffusion.latent_shape, models.device)
    y = torch.as_tensor(labels, device=models.device)
    return x_T, y, SampleGenerators([derive_seed(s, "sample/sampler_noise") for s in seeds], models.device)


@torch.no_grad()
def denoise(models: GenerationModels, cfg: SampleConfig, x_T, labels, generators, model=None) -> torch.Tensor:
    """The sampler loop over eps_fn, as generate_pixels runs it: the network (or `model` in its place) called
    on fixed chunks of `sample.micro_batch` rows."""
    d = models.diffusion
    network = in_fixed_batches(model or d.model, cfg.micro_batch)
    with bf16_autocast(models.device, cfg.bf16):
        eps_fn = d.eps_fn(labels, cfg.sampler.guidance_scale, cfg.sampler.guidance_interval, network=network,
                          guidance=cfg.sampler.guidance)
        return sample_with_config(eps_fn, x_T, d.schedule, cfg.sampler, generator=generators)


def denoise_shard(models: GenerationModels, cfg: SampleConfig, shard: ShardPlan) -> tuple[float, float]:
    """(wall, CPU) seconds of the sampler loop alone over the shard's batches; their noise is drawn before the clock."""
    inputs = [noise_for(models, labels, seeds) for labels, seeds in shard_batches(shard, cfg.batch_size)]
    clock = Clock(models.device)
    for x_T, labels, generators in inputs:
        denoise(models, cfg, x_T, labels, generators)
    return clock.lap(), clock.cpu


def stage_shard(models: GenerationModels, cfg: SampleConfig, shard: ShardPlan, class_names: list[str],
                provenance: Provenance, folder: Path, prefix: str) -> tuple[float, float]:
    """(wall, CPU) seconds of generate_shard: denoise, decode, quantise, background encode, atomic write."""
    clock = Clock(models.device)
    generate_shard(models, shard, cfg, class_names, provenance, folder, prefix)
    return clock.lap(), clock.cpu


def paired_runs(models: GenerationModels, cfg: SampleConfig, class_names: list[str], tmp: Path, repeats: int):
    """Seconds to plan, and per shard and repeat (denoiser wall, denoiser CPU, stage wall, stage CPU).

    The two runs alternate shard by shard, so load from other users drifts over both alike.
    """
    clock = Clock(models.device)
    plan = build_plan(cfg, class_names)
    provenance = provenance_for(models, cfg, plan)
    plan_s = clock.lap()
    rows = []
    for repeat in range(repeats):
        for shard in plan.shards():
            folder = tmp / f"stage-{repeat}"
            rows.append((*denoise_shard(models, cfg, shard),
                         *stage_shard(models, cfg, shard, class_names, provenance, folder, plan.prefix)))
    return plan_s, np.array(rows)


@torch.no_grad()
def timed_pixels(models: GenerationModels, cfg: SampleConfig, labels: np.ndarray, seeds: list[int]):
    """generate_pixels cut at its phases: ({phase: (wall, CPU) seconds}, uint8 pixels)."""
    clock = Clock(models.device)
    x_T, y, generators = noise_for(models, labels, seeds)
    seconds = {"noise": (clock.lap(), clock.cpu)}
    z0 = denoise(models, cfg, x_T, y, generators)
    seconds["denoise"] = (clock.lap(), clock.cpu)
    with bf16_autocast(models.device, cfg.bf16):
        images = models.autoencoder.decode(z0.float())
    seconds["decode"] = (clock.lap(), clock.cpu)
    pixels = to_uint8(images.float())
    seconds["quantise"] = (clock.lap(), clock.cpu)
    return seconds, pixels


def shard_samples(shard: ShardPlan, images: list[bytes], cfg: SampleConfig, class_names: list[str],
                  provenance: Provenance, size: int, prefix: str) -> list[ShardSample]:
    """The samples generate_shard writes for `shard` without a filter, given its encoded images."""
    return [ShardSample(key=sample_key(prefix, int(index)), image=image, label=int(label),
                        class_name=class_names[int(label)], width=size, height=size, format=cfg.image_format,
                        meta={**provenance.row(cfg, seed, position), "attempts": 1, "filter_confidence": None})
            for position, (index, label, seed, image) in enumerate(zip(shard.sample_indices, shard.labels,
                                                                       shard.seeds, images))]


def breakdown(models: GenerationModels, cfg: SampleConfig, class_names: list[str], folder: Path):
    """(wall, CPU) seconds of each part over the first shard, each measured on its own; and the shard's entry."""
    plan = build_plan(cfg, class_names)
    shard = plan.shard(0)
    seconds = {key: np.zeros(2) for key in ("noise", "denoise", "decode", "quantise")}
    pixels = []
    for labels, seeds in shard_batches(shard, cfg.batch_size):
        phases, batch_pixels = timed_pixels(models, cfg, labels, seeds)
        seconds = {k: seconds[k] + phases[k] for k in seconds}
        pixels.append(batch_pixels)
    clock = Clock(models.device)
    images = [encode_image(p, cfg.image_format) for p in np.concatenate(pixels)]
    seconds["encode"] = np.array([clock.lap(), clock.cpu])
    samples = shard_samples(shard, images, cfg, class_names, provenance_for(models, cfg, plan), models.image_size,
                            plan.prefix)
    clock.lap()
    entry = write_shard(folder / shard.name, samples)
    seconds["write"] = np.array([clock.lap(), clock.cpu])
    return seconds, len(shard.labels), entry


PARTS = [  # (key, label, how it runs in generate_shard)
    ("noise", "per-sample noise (x_T, generators)", "serial, task thread"),
    ("denoise", "denoiser (sampler loop)", "serial, task thread"),
    ("decode", "decode (autoencoder)", "serial, task thread"),
    ("quantise", "quantise to uint8 (+ copy to host)", "serial, task thread"),
    ("encode", "{fmt} encode (measured on 1 thread)", "background pool: overlaps the next batches"),
    ("write", "shard write (tar, sha256, Parquet index)", "serial, after the shard's last encode"),
]


def verdict(ratio: float, target: float) -> str:
    return "met" if ratio >= target else "MISSED"


def stage_part(args, models: GenerationModels, class_names: list[str], tmp: Path) -> dict:
    cfg = sample_config(args, args.shards * args.per_shard, args.steps, args.per_shard)
    print(f"\n## stage: {cfg.num_images} images in {args.shards} shards, {args.repeats} repeats, the two runs "
          f"alternating shard by shard\n{describe(models, cfg)}\n")
    plan_s, rows = paired_runs(models, cfg, class_names, tmp, args.repeats)
    images = cfg.num_images * args.repeats
    print_ratio(rows, images, plan_s, GPU_TARGET if models.device.type == "cuda" else CPU_TARGET)
    seconds, n, entry = breakdown(models, cfg, class_names, tmp / "breakdown")
    same = entry["sha256"] == sha256_file(tmp / "stage-0" / entry["name"])
    print(f"\nbreakdown over shard 0 ({n} images; its bytes equal the stage's shard 0: {same}):\n")
    print_breakdown(seconds, n, cfg.image_format)
    d_wall, d_cpu, s_wall, s_cpu = rows.sum(axis=0)
    fixed = sum(seconds[k][0] for k in ("noise", "decode", "quantise", "write")) / n * 1e3
    print(f"Measured stage overhead: {(s_wall - d_wall) / images * 1e3:.3f} ms/image wall, "
          f"{(s_cpu - d_cpu) / images * 1e3:.3f} ms/image CPU, against {fixed:.3f} ms/image of serial parts "
          f"(noise, decode, quantise, write) and {seconds['encode'][0] / n * 1e3:.3f} of encode.")
    return {"cfg": cfg, "denoiser_s": d_wall, "denoiser_cpu_s": d_cpu, "images": images}


def print_ratio(rows: np.ndarray, images: int, plan_s: float, target: float) -> None:
    d_wall, d_cpu, s_wall, s_cpu = rows.sum(axis=0)
    print("| run | wall s | images/s | ms/image | CPU ms/image (all threads) |\n| --- | --- | --- | --- | --- |")
    for name, wall, cpu in (("denoiser alone", d_wall, d_cpu), ("whole stage", s_wall, s_cpu)):
        print(f"| {name} | {wall:.2f} | {images / wall:.3f} | {wall / images * 1e3:.2f} | {cpu / images * 1e3:.2f} |")
    paired = rows[:, 0] / rows[:, 2]
    median, by_cpu = float(np.median(paired)), d_cpu / s_cpu
    print(f"\nratio whole stage / denoiser alone (images/s): {d_wall / s_wall:.3f} over the totals; median of "
          f"{len(paired)} shard pairs {median:.3f} (range {paired.min():.3f}-{paired.max():.3f}); by CPU time "
          f"{by_cpu:.3f}. Target >= {target}: {verdict(median, target)} by the median pair, "
          f"{verdict(by_cpu, target)} by CPU time (the steadier figure on a shared machine with one torch thread). "
          f"Planning: {plan_s * 1e3:.1f} ms per run.")


def print_breakdown(seconds: dict[str, np.ndarray], n: int, fmt: str) -> None:
    serial = sum(seconds.values())
    print("| part | ms/image | CPU ms/image | share of serial sum | in generate_shard |\n"
          "| --- | --- | --- | --- | --- |")
    for key, label, how in PARTS:
        wall, cpu = seconds[key] / n * 1e3
        share = seconds[key][0] / serial[0]
        print(f"| {label.format(fmt=fmt.upper())} | {wall:.3f} | {cpu:.3f} | {share:.1%} | {how} |")
    print(f"| serial sum | {serial[0] / n * 1e3:.3f} | {serial[1] / n * 1e3:.3f} | 100% | |")
    denoise, encode = seconds["denoise"][0], seconds["encode"][0]
    print(f"\nratio if nothing overlapped: {denoise / serial[0]:.3f}; if the encode overlapped fully: "
          f"{denoise / (serial[0] - encode):.3f}.")


# 3) FLOPs and the matmul probe

@torch.no_grad()
def denoiser_flops(models: GenerationModels, cfg: SampleConfig) -> tuple[float, int, int]:
    """(FLOPs of one forward per image, forwards per sampler run, rows per forward per image) on one image."""
    net = getattr(models.diffusion.model, "_orig_mod", models.diffusion.model)  # the eager module, not compiled
    rows: list[int] = []

    def counted(x, t, y):
        rows.append(x.shape[0])
        return net(x, t, y)

    x_T, y, generators = noise_for(models, np.zeros(1, dtype=np.int64), [0])
    with FlopCounterMode(display=False) as counter:
        denoise(models, cfg, x_T, y, generators, model=counted)
    return counter.get_total_flops() / len(rows), len(rows), rows[0]


@torch.no_grad()
def decoder_flops(models: GenerationModels) -> float:
    z = torch.zeros(1, *models.diffusion.latent_shape, device=models.device)
    with FlopCounterMode(display=False) as counter:
        models.autoencoder.decode(z)
    return counter.get_total_flops()


def matmul_rate(device: torch.device, size: int) -> tuple[float, str]:
    """FLOP/s of a square matmul: bf16 on CUDA (tensor cores), fp32 on CPU."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    reps = 50 if device.type == "cuda" else 3
    for _ in range(3):
        a @ b
    clock = Clock(device)
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / clock.lap(), str(dtype).removeprefix("torch.")


def flops_part(args, models: GenerationModels, class_names: list[str], measured: dict | None) -> None:
    cfg = measured["cfg"] if measured else sample_config(args, args.shards * args.per_shard, args.steps, args.per_shard)
    if measured is None:
        times = np.array([denoise_shard(models, cfg, shard) for shard in build_plan(cfg, class_names).shards()])
        measured = {"denoiser_s": times[:, 0].sum(), "denoiser_cpu_s": times[:, 1].sum(), "images": cfg.num_images}
    per_forward, nfe, rows = denoiser_flops(models, cfg)
    flops = per_forward * nfe * measured["images"]
    size = args.matmul_size or (8192 if models.device.type == "cuda" else 2048)
    peak, dtype = matmul_rate(models.device, size)
    unit, scale = ("TFLOP/s", 1e12) if models.device.type == "cuda" else ("GFLOP/s", 1e9)
    achieved = flops / measured["denoiser_s"]
    print(f"\n## flops\n{describe(models, cfg)}\n")
    print(f"denoiser forward: {per_forward / 1e6:.1f} MFLOP per image ({rows} rows per image with guidance), "
          f"{nfe} forwards per sample -> {per_forward * nfe / 1e9:.2f} GFLOP per image")
    print(f"decoder: {decoder_flops(models) / 1e6:.1f} MFLOP per image")
    print(f"denoiser achieved: {achieved / scale:.2f} {unit} of wall time "
          f"({flops / measured['denoiser_cpu_s'] / 1e9:.2f} GFLOP per CPU-second); {size}x{size} {dtype} matmul: "
          f"{peak / scale:.2f} {unit} (the denoiser reaches {achieved / peak:.1%} of it)")


# 4) cost per 1,000 images

def run_core(models: GenerationModels, cfg: SampleConfig, class_names: list[str], folder: Path, make_shard) -> float:
    """Seconds for the flow's work without Prefect: plan, resume scan, shards + receipts, metadata + manifest."""
    clock = Clock(models.device)
    plan = build_plan(cfg, class_names)
    provenance = provenance_for(models, cfg, plan)
    todo, _ = pending_shards(folder, plan, provenance.config_hash)
    entries = []
    for index in todo:
        entry = make_shard(plan.shard(index), provenance)
        record_done(folder, entry, provenance.config_hash)
        entries.append(entry)
    finish_run(folder, plan, entries, class_names, {"sample": cfg.model_dump(mode="json")}, {"seed": plan.seed})
    return clock.lap()


def scale_part(args, models: GenerationModels, class_names: list[str], tmp: Path) -> None:
    size = models.image_size
    fixed = encode_image(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8), args.format)
    cfg0 = sample_config(args, 1, args.scale_steps, args.scale_per_shard)
    print(f"\n## scale: time per 1,000 images\n{describe(models, cfg0)}\n")
    print("| images | shards | with model: s | s / 1,000 images | bookkeeping only: s | s / 1,000 images |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in args.scale_sizes:
        cfg = sample_config(args, n, args.scale_steps, args.scale_per_shard)

        def model_shard(shard, provenance, folder=tmp / f"model-{n}"):
            return generate_shard(models, shard, cfg, class_names, provenance, folder)

        def fixed_shard(shard, provenance, folder=tmp / f"fixed-{n}"):
            samples = shard_samples(shard, [fixed] * len(shard.labels), cfg, class_names, provenance, size, SyntheticLayout.PREFIX)
            return write_shard(folder / shard.name, samples)

        modelled = None
        if n <= args.scale_max_images:
            modelled = run_core(models, cfg, class_names, tmp / f"model-{n}", model_shard)
        bookkeeping = run_core(models, cfg, class_names, tmp / f"fixed-{n}", fixed_shard)
        cells = [f"{modelled:.1f}", f"{modelled / n * 1e3:.2f}"] if modelled is not None else ["(over the cap)", ""]
        print(f"| {n:,} | {-(-n // cfg.images_per_shard)} | {cells[0]} | {cells[1]} | {bookkeeping:.2f} | "
              f"{bookkeeping / n * 1e3:.3f} |", flush=True)
        shutil.rmtree(tmp / f"model-{n}", ignore_errors=True)
        shutil.rmtree(tmp / f"fixed-{n}", ignore_errors=True)


# 5) Ray through the real Prefect flow

class ListenWatch:
    """Records the TCP addresses this process's descendants (Ray's and Prefect's servers) listen on."""

    def __init__(self, interval: float = 0.5):
        self.seen: set[tuple[str, str, int]] = set()
        self.interval, self.done = interval, threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()

    def poll(self) -> None:
        while True:
            self.snapshot()
            if self.done.wait(self.interval):
                return

    def snapshot(self) -> None:
        import psutil

        for proc in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                for conn in proc.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN:
                        self.seen.add((proc.name(), conn.laddr.ip, conn.laddr.port))

    def exposed(self) -> list[tuple[str, str, int]]:
        return sorted(s for s in self.seen if s[1] not in LOOPBACK)


def ray_processes() -> list:
    """Descendants of this process that belong to Ray (GCS, raylet, workers, agents)."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            command = " ".join(proc.cmdline())
            if proc.name() in ("raylet", "gcs_server") or "/ray/" in command or command.startswith("ray::"):
                found.append(proc)
    return found


def shut_down_ray() -> list[str]:
    """ray.shutdown() if still up; wait for Ray's processes to end; end leftovers (ours) by pid. Returns leftovers."""
    import psutil
    import ray

    if ray.is_initialized():
        ray.shutdown()
    deadline = time.monotonic() + 15
    while ray_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    leftovers = ray_processes()
    described = [f"{p.pid} {p.name()}" for p in leftovers]
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    return described


def sandbox(ray_own_bind: bool) -> None:
    """A throwaway Prefect home with analytics off, and (unless `ray_own_bind`) a loopback-only Ray.

    Set before prefect or ray is imported: both read these at import time.
    """
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="bench-sampling-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ.pop("PREFECT_API_URL", None)  # a temporary local API, never a configured server
    # Ray replaces a node IP of 127.0.0.1 by the host's reachable IP and binds there and on 0.0.0.0/::
    # (services.resolve_ip_for_localhost); with this switch off (read when ray is imported) it keeps loopback.
    if not ray_own_bind:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


def flow_seconds(manifest: dict) -> float:
    from datetime import datetime

    run = manifest["run"]
    return (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()


def ray_run(params: Path, workers: int, diffusion: str, autoencoder: str, out: Path) -> tuple[float, ListenWatch]:
    """Wall seconds of the sample flow with `workers` Ray workers, and what its child processes listened on."""
    from flows.sample import run_sample
    from synthgen.config import load_params

    with ListenWatch() as watch:
        start = time.perf_counter()
        run_sample(load_params(str(params), [f"sample.max_workers={workers}"]), diffusion=diffusion,
                   autoencoder=autoencoder, out=str(out))
        return time.perf_counter() - start, watch


def ray_part(args, diffusion: str, autoencoder: str, tmp: Path) -> None:
    import yaml

    from synthgen.shards import read_manifest

    cfg = sample_config(args, args.ray_images, args.scale_steps, args.ray_per_shard, task_runner="ray",
                        ray_num_gpus=args.ray_num_gpus,
                        filter={"enabled": False})  # the sampling throughput alone (bench/filter.py measures the filter)
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"sample": cfg.model_dump(mode="json")}))
    print(f"\n## ray: {cfg.num_images} images in {-(-cfg.num_images // cfg.images_per_shard)} shards through "
          f"flows.sample.run_sample, task_runner=ray, ray_num_cpus={cfg.ray_num_cpus}; "
          f"{cfg.sampler.name} {cfg.sampler.steps} steps, guidance {cfg.sampler.guidance_scale}, batch "
          f"{cfg.batch_size}; each task runs torch on ray_num_cpus threads (Ray sets OMP_NUM_THREADS)\n")
    print("| workers | wall s (Prefect server + Ray start + flow) | flow body s | images/s (body) | images/s (wall) | "
          "listening addresses (Ray, Prefect) |\n| --- | --- | --- | --- | --- | --- |")
    hashes = {}
    for workers in args.ray_workers:
        try:
            wall, watch = ray_run(params, workers, diffusion, autoencoder, tmp / f"ray-{workers}")
        except Exception as e:  # the report must carry the exact error
            print(f"| {workers} | FAILED, error below | | | | |\n{type(e).__module__}.{type(e).__name__}: {e}")
            continue
        finally:
            leftovers = shut_down_ray()
        manifest = read_manifest(tmp / f"ray-{workers}")
        hashes[workers] = {s["name"]: s["sha256"] for s in manifest["shards"]}
        body = flow_seconds(manifest)
        addresses = ", ".join(sorted({ip for _, ip, _ in watch.seen}))
        exposed = f"; EXPOSED: {watch.exposed()}" if watch.exposed() else ""
        left = f"; left running: {leftovers}" if leftovers else ""
        print(f"| {workers} | {wall:.1f} | {body:.1f} | {cfg.num_images / body:.2f} | {cfg.num_images / wall:.2f} | "
              f"{addresses}{exposed}{left} |", flush=True)
    runs = list(hashes.values())
    if len(runs) > 1:
        print(f"\nshard sha256s identical across {sorted(hashes)} workers: {all(r == runs[0] for r in runs)}")
    print(f"Ray processes left after the runs: {len(ray_processes())}")


# 6) main

def parse_args() -> argparse.Namespace:
    default = SamplerConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = ["stage", "flops", "scale", "ray"]
    p.add_argument("--parts", nargs="+", choices=parts, default=parts)
    p.add_argument("--diffusion", help="trained diffusion folder (default: untrained default-size model in a temp dir)")
    p.add_argument("--autoencoder", help="trained autoencoder folder (give both or neither)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for denoiser and decoder (CUDA only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the denoiser (CUDA only)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (CUDA only)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--sampler", default=default.name)
    p.add_argument("--steps", type=int, default=default.steps)
    p.add_argument("--guidance", type=float, default=default.guidance_scale)
    p.add_argument("--eta", type=float, default=default.eta)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--per-shard", type=int, default=64)
    p.add_argument("--shards", type=int, default=2, help="stage part: shards per run")
    p.add_argument("--repeats", type=int, default=2, help="stage part: passes over the shards")
    p.add_argument("--format", choices=["png", "webp", "jpg"], default="png")
    p.add_argument("--encode-workers", type=int, default=2)
    p.add_argument("--matmul-size", type=int, help="probe size (default 8192 on CUDA, 2048 on CPU)")
    p.add_argument("--scale-sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    p.add_argument("--scale-max-images", type=int, default=1000, help="largest size run with the model")
    p.add_argument("--scale-steps", type=int, default=10, help="sampler steps of the scale and ray parts")
    p.add_argument("--scale-per-shard", type=int, default=250)
    p.add_argument("--ray-workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--ray-images", type=int, default=128)
    p.add_argument("--ray-per-shard", type=int, default=32)
    p.add_argument("--ray-own-bind", action="store_true",
                   help="leave Ray's listening addresses to flows/ray_runner.py, to check them "
                        "(default: loopback forced)")
    p.add_argument("--ray-num-gpus", type=float, default=0.0, help="GPUs each shard task asks for (0.5: two per GPU)")
    args = p.parse_args()
    if (args.diffusion is None) != (args.autoencoder is None):
        p.error("give both --diffusion and --autoencoder, or neither (default-size untrained models)")
    shard_sizes = {"stage": "per_shard", "flops": "per_shard", "scale": "scale_per_shard", "ray": "ray_per_shard"}
    for name in sorted({shard_sizes[part] for part in args.parts}):
        if getattr(args, name) % args.batch:
            print(f"note: --{name.replace('_', '-')} {getattr(args, name)} is not a multiple of --batch {args.batch}: "
                  "each shard ends in a smaller batch (with --compile, a recompilation inside the clock)")
    return args


def main() -> None:
    args = parse_args()
    if "ray" in args.parts:
        sandbox(args.ray_own_bind)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-sampling-") as folder:
        tmp = Path(folder)
        if args.diffusion:
            diffusion, autoencoder = args.diffusion, args.autoencoder
        else:
            diffusion, autoencoder = write_default_models(tmp / "models")
        models = load_models(diffusion, autoencoder, args.device, args.compile, args.channels_last)
        class_names = models.diffusion.class_names
        warm = sample_config(args, args.batch, 2, args.batch)  # lazy init and compilation outside every clock
        generate_pixels(models, np.zeros(args.batch, dtype=np.int64), list(range(args.batch)), warm)
        measured = stage_part(args, models, class_names, tmp) if "stage" in args.parts else None
        if "flops" in args.parts:
            flops_part(args, models, class_names, measured)
        if "scale" in args.parts:
            scale_part(args, models, class_names, tmp)
        if "ray" in args.parts:
            ray_part(args, diffusion, autoencoder, tmp)


if __name__ == "__main__":
    main()
