"""The PyTorch LLaMA trainer: the paper's architecture and optimizer, FSDP2 on torchrun, exact resume,
MFU and energy reporting. Reads token shards (tokenizer/shard_format.py); imports neither Beam nor
fastText, and needs nothing but PyTorch and NumPy to train (TensorBoard, safetensors and transformers are
optional, for their features only).

One process:       smallgiant train --config tiny --data DATASET --output RUN_DIR
Many processes:    torchrun --nproc_per_node 8 [--nnodes N --rdzv-endpoint HOST:PORT] -m train \\
                       --config 7b --data DATASET --output RUN_DIR
Resume:            the same command with --resume (any number of processes; DCP reshards)
Inspect a config:  smallgiant train --config 65b --dry-run
Export:            smallgiant train export-hf RUN_DIR --output HF_DIR

Checkpoints are written by every process into RUN_DIR/checkpoints, so on several nodes RUN_DIR must be
on a filesystem they share.

Modules: config (the one config object and presets), model (the transformer), data (batches from the
shards), optim (AdamW and the schedule), parallel (process group, activation checkpointing, compile,
FSDP2), checkpoint (DCP, atomic, keep last K) and safe_reader (loading without unsafe unpickling),
run_dir (config.json, run.json, resume rules), metrics (MFU; console, JSONL, TensorBoard), energy
(paper estimate and NVML), trainer (the loop), export_hf, synthetic (structured token data for checks
and benchmarks), cli.
"""
