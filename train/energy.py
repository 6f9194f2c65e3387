"""Energy and carbon of a run, as the paper estimates them (section 6), and as the GPUs measured them.

Estimate: energy (kWh) = GPU-hours x GPU power (TDP, 400 W for an A100-80GB) x PUE 1.1 / 1000, and
kgCO2eq = kWh x 0.385 (the US average carbon intensity the paper uses); all three are config fields.
Measured: NVML's total-energy counter of each process's GPU (nvmlDeviceGetTotalEnergyConsumption, in
mJ since the driver loaded), read at the start and end of the run through the driver's own library,
so that nothing beyond PyTorch needs installing.
"""
from __future__ import annotations

import ctypes
import logging

import torch

log = logging.getLogger("smallgiant.train")


def paper_estimate(gpu_hours: float, tdp_watts: float, pue: float, kg_per_kwh: float) -> dict[str, float]:
    kwh = gpu_hours * tdp_watts * pue / 1000.0
    return {"gpu_hours": gpu_hours, "kwh": kwh, "kg_co2eq": kwh * kg_per_kwh}


def energy_summary(train_seconds: float, gpus: int, measured_joules: float | None, tdp_watts: float, pue: float,
                   kg_per_kwh: float) -> dict:
    """The paper's estimate for `gpus` GPUs busy for `train_seconds`, and NVML's measurement (x PUE) beside it."""
    gpu_hours = train_seconds * gpus / 3600.0
    estimate = paper_estimate(gpu_hours, tdp_watts, pue, kg_per_kwh)
    measured_kwh = measured_joules / 3.6e6 if gpus and measured_joules is not None else None
    return {"gpu_hours": gpu_hours, "estimated_kwh": estimate["kwh"], "estimated_kg_co2eq": estimate["kg_co2eq"],
            "measured_kwh": measured_kwh,
            "measured_kg_co2eq": measured_kwh * pue * kg_per_kwh if measured_kwh is not None else None,
            "energy_basis": f"GPU-hours x {tdp_watts:g} W x PUE {pue:g}; {kg_per_kwh:g} kgCO2eq/kWh"}


def format_energy(e: dict) -> list[str]:
    if not e["gpu_hours"]:
        return ["energy: no GPU, so no GPU-hours to estimate from"]
    lines = [(f"energy (paper's estimate): {e['gpu_hours']:.3f} GPU-hours -> {e['estimated_kwh']:.3f} kWh, "
              f"{e['estimated_kg_co2eq']:.3f} kgCO2eq ({e['energy_basis']})")]
    if e["measured_kwh"] is not None:
        lines.append(f"energy (NVML, measured): {e['measured_kwh']:.3f} kWh; with PUE, "
                     f"{e['measured_kg_co2eq']:.3f} kgCO2eq")
    return lines


class NvmlEnergy:
    """This process's GPU energy counter; `available` is False (with `reason`) where it cannot be read."""

    def __init__(self, device: torch.device):
        self.available, self.reason, self._handle, self._start_mj = False, "", None, 0
        if device.type != "cuda":
            self.reason = "no GPU"
            return
        try:
            self._nvml = ctypes.CDLL("libnvidia-ml.so.1")
            self._check(self._nvml.nvmlInit_v2(), "nvmlInit")
            uuid = str(torch.cuda.get_device_properties(device).uuid)
            uuid = uuid if uuid.startswith(("GPU-", "MIG-")) else "GPU-" + uuid
            handle = ctypes.c_void_p()
            self._check(self._nvml.nvmlDeviceGetHandleByUUID(uuid.encode(), ctypes.byref(handle)), "handle")
            self._handle = handle
            self._start_mj = self._read_mj()
            self.available = True
        except (OSError, RuntimeError, AttributeError) as exc:
            self.reason = f"NVML energy counter unavailable: {exc}"
            log.info(self.reason)

    @staticmethod
    def _check(code: int, what: str) -> None:
        if code != 0:
            raise RuntimeError(f"{what} returned NVML error {code}")

    def _read_mj(self) -> int:
        mj = ctypes.c_ulonglong()
        self._check(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle, ctypes.byref(mj)), "energy")
        return mj.value

    def joules(self) -> float | None:
        """Energy this GPU used since this object was made, or None."""
        if not self.available:
            return None
        try:
            return (self._read_mj() - self._start_mj) / 1000.0
        except RuntimeError as exc:
            log.info("NVML energy read failed: %s", exc)
            return None
