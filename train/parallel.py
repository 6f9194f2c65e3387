"""Processes, devices and the wrappers that make the model fast: activation checkpointing, torch.compile
and FSDP2 (`fully_shard`) data-parallel sharding.

Launched by torchrun (any number of processes and nodes), every process joins one process group (NCCL on
GPUs, gloo on CPU) and one 1-D device mesh (FSDP2 shards over it, or over a 2-D replicate x shard mesh
for HSDP); the model is built on the meta device, wrapped, sharded and
only then materialised, so no process ever holds the full model. FSDP2 gathers each block's weights just
before it runs and prefetches the next block's while the current one computes, and reduce-scatters
gradients during the backward pass: communication overlaps compute. One process without torchrun trains
the plain model.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import os

import torch
import torch.distributed as dist

from train.config import TrainConfig, mesh_shape
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
        timeout = datetime.timedelta(seconds=cfg.pg_timeout_s)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None,
                                timeout=timeout, store=_restart_store(timeout), rank=rank, world_size=world)
    from torch.distributed.device_mesh import init_device_mesh
    mesh = init_device_mesh(device.type, (world,), mesh_dim_names=("dp",))
    return Runtime(rank, world, local_rank, device, mesh)


def _restart_store(timeout: datetime.timedelta):
    """Under torchrun, the agent's TCP store with a prefix of its own for each restart. The agent keeps one
    store for the whole job, and torch 2.13 gives workers no per-restart prefix: restarted workers would
    read the dead ones' addresses and never connect. None outside torchrun (init_process_group's default)."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), int(os.environ["WORLD_SIZE"]),
                          is_master=False, timeout=timeout)
    return dist.PrefixStore(f"/smallgiant/restart_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def teardown(rt: Runtime, failed: bool = False) -> None:
    """Leave the process group. After a failure there is no barrier (the peers may be waiting in some other
    collective and would never reach it): the group is aborted, so that this process exits at once and
    torchrun stops the others."""
    if not (rt.distributed and dist.is_initialized()):
        return
    if failed:
        abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
        try:
            abort() if abort is not None else dist.destroy_process_group()
        except Exception as exc:        # the process is failing already: the original error is the one to see
            log.warning("process group not closed cleanly after the failure: %s", exc)
        return
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


def data_parallel_mesh(cfg: TrainConfig, rt: Runtime):
    """The mesh FSDP2 shards over: the process group's 1-D mesh, or for HSDP a 2-D one (dp_replicate
    replicas across nodes, each sharded over dp_shard processes within a node: torchrun numbers the
    processes of a node consecutively, so the inner dimension stays on one node's fast links)."""
    replicas, shards = mesh_shape(cfg, rt.world_size)
    if replicas == 1:
        return rt.mesh
    from torch.distributed.device_mesh import init_device_mesh
    return init_device_mesh(rt.device.type, (replicas, shards), mesh_dim_names=("dp_replicate", "dp_shard"))


def mixed_precision(cfg: TrainConfig, bf16: bool, param_dtype: torch.dtype | None = None):
    """bf16 weights for compute, gradients reduced in cfg.reduce_dtype. cast_forward_inputs=False: FSDP2
    must not cast a unit's inputs (the fp32 residual stream, the fp32 rotary tables) to bf16, so a block
    sees the same dtypes as on one process, where only autocast decides."""
    from torch.distributed.fsdp import MixedPrecisionPolicy
    if not bf16:
        return MixedPrecisionPolicy(cast_forward_inputs=False)
    return MixedPrecisionPolicy(param_dtype=param_dtype or torch.bfloat16,
                                reduce_dtype=getattr(torch, cfg.reduce_dtype), cast_forward_inputs=False)


def apply_fsdp(model: Transformer, cfg: TrainConfig, mesh, bf16: bool) -> None:
    """FSDP2 units as torchtitan places them: the token embedding, each block, and [final norm, output]
    are units of their own; the root keeps FSDP2's default (it stays gathered after forward).
    reshard_after_forward per unit: the embedding and the blocks free their gathered weights after the
    forward pass (when cfg.reshard_after_forward), except the last block and [norm, output], which the
    backward pass needs again at once."""
    from torch.distributed.fsdp import fully_shard
    mp = mixed_precision(cfg, bf16)
    reshard = cfg.reshard_after_forward
    # a lookup gains nothing from bf16 weights, and fp32 keeps the embedding output what it is on one process
    fully_shard(model.tok_embeddings, mesh=mesh, mp_policy=mixed_precision(cfg, bf16, torch.float32),
                reshard_after_forward=reshard)
    last = len(model.layers) - 1
    for i, block in enumerate(model.layers):
        fully_shard(block, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard and i < last)
    fully_shard([model.norm, model.output], mesh=mesh, mp_policy=mp, reshard_after_forward=False)
    fully_shard(model, mesh=mesh, mp_policy=mp)


def build_model(cfg: TrainConfig, rt: Runtime) -> Transformer:
    """Meta-device model -> activation checkpointing -> per-block compile -> FSDP2 -> materialise -> init."""
    with torch.device("meta"):
        model = Transformer(cfg)
    apply_activation_checkpointing(model, cfg.activation_checkpointing)
    if use_compile(cfg, rt.device):
        for block in model.layers:
            block.compile(fullgraph=True)     # a graph break is an error, not a silent slowdown
    if rt.distributed:
        apply_fsdp(model, cfg, data_parallel_mesh(cfg, rt), use_bf16(cfg, rt.device))
    model.to_empty(device=rt.device)
    init_weights(model, cfg)
    model.train()
    return model
