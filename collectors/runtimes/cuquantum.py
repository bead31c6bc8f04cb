"""NVIDIA cuQuantum / CUDA-Q jobs: no admin API, only processes to watch and a memory ceiling.

Matched by command line (cuquantum, custatevec, cutensornet, cudensitymat, cudaq)."""

from __future__ import annotations

from collectors.runtimes.kind import RuntimeKind

KIND = RuntimeKind(
    name="cuquantum",
    title="cuQuantum / CUDA-Q jobs",
    process_cmdline=(r"(?i)(cuquantum|custatevec|cutensornet|cudensitymat|\bcudaq\b)",),
    default_ceiling_bytes=2.5e9,
    notes="No API: memory from the processes only.",
)
