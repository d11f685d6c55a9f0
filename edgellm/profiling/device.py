"""The machine a profile runs on (detection, torch device and precision) and device
profiles (the layout of ``system/data/devices.yaml``): writing and loading them."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from pathlib import Path
from typing import Any

from edgellm.errors import EdgeLLMError

PRECISIONS_RUN = ("fp16", "bf16", "fp32")


RESERVED_FRACTION = 0.10  # memory held back in the written profile (vLLM's default headroom)


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def hardware(device: str) -> dict[str, Any]:
    """Name, memory [B] and a slug of the machine ``device`` runs on."""
    if device.startswith("cuda"):
        import torch

        props = torch.cuda.get_device_properties(torch.device(device))
        name = props.name
        mem = int(props.total_memory)
        label = name
    else:
        name = cpu_name()
        try:
            mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            mem = 16 * 2**30
        label = f"{name}, {os.cpu_count()} cores"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"
    prefix = "cuda" if device.startswith("cuda") else "cpu"
    return {"name": name, "label": label, "memory_bytes": mem,
            "slug": f"{prefix}-{slug}" if not slug.startswith(prefix) else slug}


def match_catalog_device(gpu_name: str) -> str | None:
    """The catalog device whose name matches a CUDA device name, if any."""
    from edgellm.system import catalog

    have = set(re.split(r"[^a-z0-9]+", gpu_name.lower()))
    for name in catalog.devices():  # every word of the catalog name in the CUDA name
        if set(name.lower().split("-")) <= have:
            return name
    return None


def resolve_device(choice: str) -> str:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise EdgeLLMError(f"--device: {choice} requested but torch sees no CUDA device")
    return choice


def resolve_precision(requested: str, device: str) -> str:
    """The precision that actually runs (CPU: fp16 -> bf16, same bytes per element)."""
    if requested not in PRECISIONS_RUN:
        raise EdgeLLMError(f"--quant: must be one of {', '.join(PRECISIONS_RUN)}, "
                           f"got {requested!r}")
    if device == "cpu" and requested == "fp16":
        return "bf16"
    return requested


def device_profile(name: str, hw: dict, precision: str, requested: str, C: float, M: float,
                   command: str, catalog_device: str | None = None) -> dict[str, Any]:
    """A device entry in the layout of ``system/data/devices.yaml`` (with ``sources``).

    With ``catalog_device`` the datasheet peaks are kept and the efficiencies are the fitted
    rates over them (where a fitted rate beats the datasheet, the peak is replaced by it and
    the efficiency is 1). Without one, peak = fitted rate and efficiency = 1.
    """
    when = _dt.date.today().isoformat()
    how = f"measured by `{command}` on {when}, {hw['label']}"
    src: dict[str, str] = {}
    peak_c, eff_c, bw, eff_m = C, 1.0, M, 1.0
    if catalog_device is not None:
        from edgellm.system import catalog

        ref = catalog.device(catalog_device)
        sheet = f"datasheet figure of catalog device {catalog_device!r}"
        if precision in ref.peak_flops and C <= ref.peak_flops[precision]:
            peak_c, eff_c = ref.peak_flops[precision], C / ref.peak_flops[precision]
            src[f"peak_flops.{precision}"] = sheet
        if M <= ref.mem_bandwidth:
            bw, eff_m = ref.mem_bandwidth, M / ref.mem_bandwidth
            src["mem_bandwidth"] = sheet
    src.setdefault(f"peak_flops.{precision}",
                   f"fitted effective {precision} rate (no datasheet peak known), {how}")
    src.setdefault("mem_bandwidth",
                   f"fitted effective bandwidth (no datasheet figure known), {how}")
    src["compute_efficiency"] = (f"fitted C / peak_flops.{precision}, {how}"
                                 if eff_c < 1 else f"1.0: peak_flops is the fitted rate, {how}")
    src["memory_efficiency"] = (f"fitted M / mem_bandwidth, {how}"
                                if eff_m < 1 else f"1.0: mem_bandwidth is the fitted rate, {how}")
    src["memory_bytes"] = ("torch.cuda.get_device_properties().total_memory"
                           if "cuda" in hw["slug"] else "os.sysconf physical pages x page size")
    src["memory_bytes"] += f", {how}"
    src["reserved_bytes"] = (f"edgellm-gym assumption: {RESERVED_FRACTION:.0%} of memory_bytes "
                             "(runtime, activations, fragmentation; vLLM's default headroom)")
    peaks = {precision: float(peak_c)}
    if requested != precision:
        peaks[requested] = float(peak_c)
        src[f"peak_flops.{requested}"] = (f"the {precision} figure: {requested} was requested "
                                          f"and {precision} ran instead (same bytes per "
                                          f"element), {how}")
    mem = int(hw["memory_bytes"])
    entry = {"memory_bytes": mem, "reserved_bytes": int(mem * RESERVED_FRACTION),
             "peak_flops": peaks, "mem_bandwidth": float(bw),
             "compute_efficiency": float(min(1.0, eff_c)),
             "memory_efficiency": float(min(1.0, eff_m)), "sources": src}
    return {"devices": {name: entry}}


def load_device_profile(path: str | os.PathLike, name: str | None = None):
    """Read a profile written by ``edgellm profile`` (or ``devices.yaml``) into a ``Device``.

    ``name`` picks an entry when the file holds several. Errors name the file.
    """
    import yaml

    from edgellm.system import Device, InstanceError

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise EdgeLLMError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise EdgeLLMError(f"{path}: not valid YAML ({e})") from None
    devs = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(devs, dict) or not devs:
        raise EdgeLLMError(f"{path}: devices: missing or empty (expected a map of device entries)")
    if name is None:
        if len(devs) > 1:
            raise EdgeLLMError(f"{path}: holds {len(devs)} devices ({', '.join(devs)}); pick one")
        name = next(iter(devs))
    if name not in devs:
        raise EdgeLLMError(f"{path}: no device {name!r}; it holds {', '.join(devs)}")
    entry = devs[name]
    if not isinstance(entry, dict):
        raise EdgeLLMError(f"{path}: devices.{name}: must be a map")
    fields_ = {k: v for k, v in entry.items() if k != "sources"}
    try:
        return Device.from_dict({"name": name, **fields_}, f"devices.{name}")
    except InstanceError as e:
        raise EdgeLLMError(f"{path}: {e}") from None
