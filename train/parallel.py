"""Processes, devices and the wrappers that make the model fast: activation checkpointing, torch.compile
and FSDP2 (`fully_shard`) data-parallel sharding.

Launched by torchrun (any number of processes and nodes), every process joins one process group (NCCL on
GPUs, gloo on CPU) and one 1-D device mesh; the model is built on the meta device, wrapped, sharded and
only then materialised, so no process ever holds the full model. FSDP2 gathers each block's weights just
before it runs and prefetches the next block's while the current one computes, and reduce-scatters
gradients during the backward pass: communication overlaps compute. One process without torchrun trains
the plain model.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os

import torch
import torch.distributed as dist

from train.config import TrainConfig
from train.model import Transformer, init_weights

log = logging.getLogger("smallgiant.train")


@dataclasses.dataclass
class Runtime:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    mesh: object | None = None          # DeviceMesh when there is more than one process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.mesh is not None


def pick_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("device cuda was asked for but no CUDA GPU is available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(cfg: TrainConfig) -> Runtime:
    """Join torchrun's process group when there is one (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(cfg, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    elif cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    if world == 1:
        return Runtime(0, 1, 0, device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    from torch.distributed.device_mesh import init_device_mesh
    mesh = init_device_mesh(device.type, (world,), mesh_dim_names=("dp",))
    return Runtime(rank, world, local_rank, device, mesh)


def teardown(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.barrier()      # a process that leaves first must not close connections a peer still uses
        dist.destroy_process_group()


def all_reduce(t: torch.Tensor, rt: Runtime, op: str = "avg") -> torch.Tensor:
    """Sum or average a tensor over processes (gloo has no AVG: sum, then divide)."""
    if not rt.distributed:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / rt.world_size if op == "avg" else t


def barrier(rt: Runtime) -> None:
    if rt.distributed:
        dist.barrier()


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")


def use_compile(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda")


def _selective_policy():
    """Keep what is expensive to recompute (the outputs of the linear layers and of attention), recompute
    the rest (norms, rotary, SwiGLU's elementwise products): the paper's section 2.4."""
    from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts
    aten = torch.ops.aten
    keep = {aten.mm.default, aten.addmm.default, aten.bmm.default}
    for name in ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                 "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu"):
        if hasattr(aten, name):
            keep.add(getattr(aten, name).default)

    def policy(ctx, op, *args, **kwargs):
        return CheckpointPolicy.MUST_SAVE if op in keep else CheckpointPolicy.PREFER_RECOMPUTE

    return functools.partial(create_selective_checkpoint_contexts, policy)


def apply_activation_checkpointing(model: Transformer, mode: str) -> None:
    """none: keep every activation; full: keep only each block's input; selective: keep linear outputs."""
    if mode == "none":
        return
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
    kwargs = {"preserve_rng_state": False}
    if mode == "selective":
        kwargs["context_fn"] = _selective_policy()
    for i, block in enumerate(model.layers):
        model.layers[i] = checkpoint_wrapper(block, **kwargs)


def apply_fsdp(model: Transformer, rt: Runtime, bf16: bool, reshard_after_forward: bool) -> None:
    """One FSDP2 unit per block and one for the rest (embeddings, final norm, output)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
    last = len(model.layers) - 1
    for i, block in enumerate(model.layers):
        # the last block's weights are needed again at once by the backward pass: keep them gathered
        fully_shard(block, mesh=rt.mesh, mp_policy=mp, reshard_after_forward=reshard_after_forward and i < last)
    fully_shard(model, mesh=rt.mesh, mp_policy=mp, reshard_after_forward=reshard_after_forward)


def build_model(cfg: TrainConfig, rt: Runtime) -> Transformer:
    """Meta-device model -> activation checkpointing -> per-block compile -> FSDP2 -> materialise -> init."""
    with torch.device("meta"):
        model = Transformer(cfg)
    apply_activation_checkpointing(model, cfg.activation_checkpointing)
    if use_compile(cfg, rt.device):
        for block in model.layers:
            block.compile()
    if rt.distributed:
        apply_fsdp(model, rt, use_bf16(cfg, rt.device), cfg.reshard_after_forward)
    model.to_empty(device=rt.device)
    init_weights(model, cfg)
    model.train()
    return model
